/* campaign_fields.h: the field tables. One X-macro list of the campaign's
 * fields gives the enumeration, the table (campaign_fields.c), the name
 * lookup, the order of pairs(), help and docs, and the masks derived from
 * its flags column: what a create takes (CS_CREATE) and what validate()
 * reads (CS_VALIDATED). The tables of a variant and a follow-up too, and
 * the two functions that describe them (campaign_fields.c). Nothing of the
 * campaign type itself: that is campaign.h. */
#ifndef COLDSEND_CAMPAIGN_FIELDS_H
#define COLDSEND_CAMPAIGN_FIELDS_H

#include <stdint.h>

#include "compat.h"

/* How a value is checked, converted and described. */
enum cs_kind {
  K_UUID,      /* a UUID string (the read-only id) */
  K_TEXT,      /* a string the server sets */
  K_LIST,      /* an array of strings the server sets */
  K_STRING,    /* min..max characters, valid UTF-8, no NUL */
  K_INT,       /* integer min..max */
  K_BOOL,      /* strictly true or false */
  K_TZ,        /* IANA time zone name */
  K_DATE,      /* ISO 8601 date-time, or epoch seconds turned into one */
  K_UUIDS,     /* array of distinct UUIDs, at least one */
  K_DAYS,      /* array of min..max distinct days 1..7 */
  K_MAP,       /* lead field -> CSV column, with an email key */
  K_VARIANTS,  /* array of variant tables */
  K_SEQUENCES, /* array of follow-up tables */
  K_LETTERS,   /* variant name: min..max ASCII letters, upper-cased */
  K_TRIGGER    /* follow-up trigger enumeration */
};

#define CS_READONLY 1 /* set by the server only */
#define CS_REQUIRED 2 /* inside a variant or follow-up: must be given */
/* In the create schema (spec 6.1): a POST /campaigns takes these fields and
 * ignores the rest, which follow in one PUT. The one list of what a create
 * takes: the create request, _clear_dirty("create") and core.CREATE_FIELDS. */
#define CS_CREATE 4
/* Read by validate() (campaign_validate.c, which reads no other: its
 * read_field() raises on a field without the flag). A change to any other
 * field leaves a cached "pass" standing (cs_store_changed). */
#define CS_VALIDATED 8

typedef struct cs_field {
  const char *name;
  unsigned char kind;
  unsigned char flags;
  int min, max;
  const char *def; /* the server's default as text; NULL: none or null */
} cs_field;

/* The campaign fields in the stable order of pairs() and campaign_fields():
 * identity first, then the update request (spec 6.4) with the ramp-up
 * fields of 6.1, then what the server reports; CS_CREATE marks the create
 * schema. One list gives both the enumeration and the table, so they cannot
 * drift apart. */
#define CS_CAMPAIGN_FIELDS(X)                                                  \
  X(ID, "id", K_UUID, CS_READONLY | CS_VALIDATED, 0, 0, NULL)                  \
  X(STATUS, "status", K_TEXT, CS_READONLY, 0, 0, NULL)                         \
  X(NAME, "name", K_STRING, CS_CREATE | CS_VALIDATED, 8, 255, NULL)            \
  X(DAILY_LIMIT, "daily_limit_per_inbox", K_INT, CS_CREATE, 1, 100, NULL)      \
  X(START_DATE, "start_date", K_DATE, CS_CREATE, 0, 0, NULL)                   \
  X(TIMEZONE, "timezone", K_TZ, CS_CREATE, 1, 100, "America/New_York")         \
  X(SENDING_DAYS, "sending_days", K_DAYS, CS_CREATE, 1, 7, "1,2,3,4,5")        \
  X(WINDOW_START, "sending_window_start", K_INT, CS_CREATE | CS_VALIDATED, 0,  \
    23, "9")                                                                   \
  X(WINDOW_START_MINUTE, "sending_window_start_minute", K_INT,                 \
    CS_CREATE | CS_VALIDATED, 0, 59, "0")                                      \
  X(WINDOW_END, "sending_window_end", K_INT, CS_CREATE | CS_VALIDATED, 1, 24,  \
    "17")                                                                      \
  X(WINDOW_END_MINUTE, "sending_window_end_minute", K_INT,                     \
    CS_CREATE | CS_VALIDATED, 0, 59, "0")                                      \
  X(TRACKING, "enable_tracking", K_BOOL, CS_CREATE, 0, 0, "false")             \
  X(UNSUBSCRIBE, "enable_unsubscribe", K_BOOL, CS_CREATE, 0, 0, "true")        \
  X(RAMP_ENABLED, "ramp_up_enabled", K_BOOL, CS_CREATE | CS_VALIDATED, 0, 0,   \
    "false")                                                                   \
  X(RAMP_INCREMENT, "ramp_up_increment", K_INT, CS_CREATE | CS_VALIDATED, 1,   \
    100000, "50")                                                              \
  X(RAMP_MAX, "ramp_up_max_limit", K_INT, CS_CREATE | CS_VALIDATED, 1, 100000, \
    "500")                                                                     \
  X(LEAD_MAPPING, "lead_mapping", K_MAP, 0, 0, 0, NULL)                        \
  X(INBOX_IDS, "inbox_ids", K_UUIDS, 0, 1, 0, NULL)                            \
  X(VARIANTS, "variants", K_VARIANTS, CS_VALIDATED, 0, 0, NULL)                \
  X(SEQUENCES, "sequences", K_SEQUENCES, CS_VALIDATED, 0, 0, NULL)             \
  X(LAUNCH_READY, "is_launch_ready", K_BOOL, CS_READONLY, 0, 0, NULL)          \
  X(MISSING, "missing_requirements", K_LIST, CS_READONLY, 0, 0, NULL)          \
  X(UPDATED_AT, "updated_at", K_TEXT, CS_READONLY, 0, 0, NULL)

#define CS_FIELD_ENUM(e, ...) F_##e,
enum cs_field_index { CS_CAMPAIGN_FIELDS(CS_FIELD_ENUM) F_COUNT };
#undef CS_FIELD_ENUM

extern const cs_field cs_campaign_fields[F_COUNT];

/* The dirty bits of the create schema, derived from the table. */
#define CS_CREATE_BIT(e, name, kind, flags, ...) \
  | (((flags)&CS_CREATE) ? (uint32_t)1 << F_##e : 0)
#define CS_CREATE_MASK (0 CS_CAMPAIGN_FIELDS(CS_CREATE_BIT))

/* The fields validate() reads, derived from the table likewise. */
#define CS_VALIDATED_BIT(e, name, kind, flags, ...) \
  | (((flags)&CS_VALIDATED) ? (uint32_t)1 << F_##e : 0)
#define CS_VALIDATE_READS (0 CS_CAMPAIGN_FIELDS(CS_VALIDATED_BIT))

/* A variant (spec 6.5) and a follow-up (spec 6.6): records checked like
 * fields, by the same kinds (campaign_fields.c). */
#define CS_VARIANT_FIELD_COUNT 5
#define CS_SEQUENCE_FIELD_COUNT 5
extern const cs_field cs_variant_fields[CS_VARIANT_FIELD_COUNT];
extern const cs_field cs_sequence_fields[CS_SEQUENCE_FIELD_COUNT];

/* campaign_fields.c */
/* Pushes the rule of f as messages and campaign_fields() word it. */
void cs_push_rule(lua_State *L, const cs_field *f);
/* core.campaign_fields() -> {{name=, type=, rule=, default=, ...}, ...} */
int cs_campaign_fields_list(lua_State *L);

#endif
