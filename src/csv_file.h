/* csv_file.h: the coldsend.csv userdata, shared by csv_file.c (the type
 * and its methods) and csv_preflight.c (which reads a file through one). */
#ifndef COLDSEND_CSV_FILE_H
#define COLDSEND_CSV_FILE_H

#include <sys/stat.h>

#include "compat.h"
#include "csv.h"

#define CS_CSV_TYPE "coldsend.csv"

typedef struct cs_csv_file {
  cs_csv r;
  int fd; /* -1 once closed */
  char *path;
} cs_csv_file;

/* The reader's source over the file descriptor at ctx (an int *). */
long cs_csv_fd_source(void *ctx, char *buf, size_t size);
/* Pushes an open reader of path and returns 1, or pushes nil, message,
 * errno (like io.open) and returns 0. */
int cs_csv_push_reader(lua_State *L, const char *path, struct stat *st);
/* Closes the file and frees the buffers; harmless twice. */
void cs_csv_release(cs_csv_file *f);

/* csv_preflight.c: core.csv_preflight(path, opts) */
int cs_csv_preflight(lua_State *L);

#endif
