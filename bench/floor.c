/* floor.c: the floor of the sequential-save benchmark. The same PUTs as the
 * module (same URL, headers and JSON bodies, alternating two bodies) over ONE
 * reused libcurl easy handle, with the response body collected but not
 * parsed. Prints "<wall us/request> <cpu us/request>" for the timed part.
 *
 * usage: floor URL N BODY_FILE_A BODY_FILE_B HEADER_FILE
 * HEADER_FILE holds the request headers, one "Name: value" a line
 * (bench/run.lua writes the ones the module sends). */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct sink {
  char buf[4096];
  size_t len;
};

/* Keeps the body (it is small) the way a client would before parsing it. */
static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  struct sink *s = ud;
  size_t len = size * n;
  if (len > sizeof s->buf - s->len) len = sizeof s->buf - s->len;
  memcpy(s->buf + s->len, p, len);
  s->len += len;
  return size * n;
}

static char *read_file(const char *path, long *len) {
  FILE *f = fopen(path, "rb");
  char *s;
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  *len = ftell(f);
  fseek(f, 0, SEEK_SET);
  s = malloc((size_t)*len + 1);
  if (s == NULL || fread(s, 1, (size_t)*len, f) != (size_t)*len) exit(2);
  s[*len] = '\0';
  fclose(f);
  return s;
}

static double wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

static void put(CURL *h, const char *body, long len, struct sink *s) {
  long status = 0;
  CURLcode rc;
  s->len = 0;
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, len);
  rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK || status != 200) {
    fprintf(stderr, "floor: %s, status %ld\n", curl_easy_strerror(rc), status);
    exit(1);
  }
}

int main(int argc, char **argv) {
  long n, warmup, len[2];
  char *body[2];
  struct curl_slist *headers = NULL;
  struct sink s;
  double w0, c0;
  CURL *h;
  long i;
  char *lines, *line, *save = NULL;
  long lines_len;
  if (argc != 6) {
    fprintf(stderr, "usage: floor URL N BODY_FILE_A BODY_FILE_B HEADER_FILE\n");
    return 2;
  }
  n = atol(argv[2]);
  warmup = n / 20 + 1;
  body[0] = read_file(argv[3], &len[0]);
  body[1] = read_file(argv[4], &len[1]);
  lines = read_file(argv[5], &lines_len);
  if (body[0] == NULL || body[1] == NULL || lines == NULL) return 2;
  for (line = strtok_r(lines, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save))
    headers = curl_slist_append(headers, line);

  curl_global_init(CURL_GLOBAL_DEFAULT);
  h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, argv[1]);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);

  for (i = 0; i < warmup; i++) put(h, body[i & 1], len[i & 1], &s);
  w0 = wall_us();
  c0 = cpu_us();
  for (i = 0; i < n; i++) put(h, body[i & 1], len[i & 1], &s);
  printf("%.3f %.3f\n", (wall_us() - w0) / n, (cpu_us() - c0) / n);

  curl_easy_cleanup(h);
  curl_slist_free_all(headers);
  free(body[0]);
  free(body[1]);
  free(lines);
  return 0;
}
