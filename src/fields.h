/* fields.h: the campaign's field table and the contracts between the
 * campaign files (campaign.c type, campaign_check.c rules at assignment,
 * rules.c validate, campaign_sync.c changes/requests/server data). */
#ifndef COLDSEND_FIELDS_H
#define COLDSEND_FIELDS_H

#include <stdint.h>

#include "compat.h"

#define CS_CAMPAIGN_TYPE "coldsend.campaign"

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
#define CS_CAMPAIGN_FIELDS(X)                                                \
  X(ID, "id", K_UUID, CS_READONLY, 0, 0, NULL)                               \
  X(STATUS, "status", K_TEXT, CS_READONLY, 0, 0, NULL)                       \
  X(NAME, "name", K_STRING, CS_CREATE, 8, 255, NULL)                         \
  X(DAILY_LIMIT, "daily_limit_per_inbox", K_INT, CS_CREATE, 1, 100, NULL)    \
  X(START_DATE, "start_date", K_DATE, CS_CREATE, 0, 0, NULL)                 \
  X(TIMEZONE, "timezone", K_TZ, CS_CREATE, 1, 100, "America/New_York")       \
  X(SENDING_DAYS, "sending_days", K_DAYS, CS_CREATE, 1, 7, "1,2,3,4,5")      \
  X(WINDOW_START, "sending_window_start", K_INT, CS_CREATE, 0, 23, "9")      \
  X(WINDOW_START_MINUTE, "sending_window_start_minute", K_INT, CS_CREATE, 0, \
    59, "0")                                                                 \
  X(WINDOW_END, "sending_window_end", K_INT, CS_CREATE, 1, 24, "17")         \
  X(WINDOW_END_MINUTE, "sending_window_end_minute", K_INT, CS_CREATE, 0, 59, \
    "0")                                                                     \
  X(TRACKING, "enable_tracking", K_BOOL, CS_CREATE, 0, 0, "false")           \
  X(UNSUBSCRIBE, "enable_unsubscribe", K_BOOL, CS_CREATE, 0, 0, "true")      \
  X(RAMP_ENABLED, "ramp_up_enabled", K_BOOL, CS_CREATE, 0, 0, "false")       \
  X(RAMP_INCREMENT, "ramp_up_increment", K_INT, CS_CREATE, 1, 100000, "50")  \
  X(RAMP_MAX, "ramp_up_max_limit", K_INT, CS_CREATE, 1, 100000, "500")       \
  X(LEAD_MAPPING, "lead_mapping", K_MAP, 0, 0, 0, NULL)                      \
  X(INBOX_IDS, "inbox_ids", K_UUIDS, 0, 1, 0, NULL)                          \
  X(VARIANTS, "variants", K_VARIANTS, 0, 0, 0, NULL)                         \
  X(SEQUENCES, "sequences", K_SEQUENCES, 0, 0, 0, NULL)                      \
  X(LAUNCH_READY, "is_launch_ready", K_BOOL, CS_READONLY, 0, 0, NULL)        \
  X(MISSING, "missing_requirements", K_LIST, CS_READONLY, 0, 0, NULL)        \
  X(UPDATED_AT, "updated_at", K_TEXT, CS_READONLY, 0, 0, NULL)

#define CS_FIELD_ENUM(e, ...) F_##e,
enum cs_field_index { CS_CAMPAIGN_FIELDS(CS_FIELD_ENUM) F_COUNT };
#undef CS_FIELD_ENUM

extern const cs_field cs_campaign_fields[F_COUNT];

/* The dirty bits of the create schema, derived from the table. */
#define CS_CREATE_BIT(e, name, kind, flags, ...) \
  | (((flags)&CS_CREATE) ? (uint32_t)1 << F_##e : 0)
#define CS_CREATE_MASK (0 CS_CAMPAIGN_FIELDS(CS_CREATE_BIT))

/* Slots of the store table (the userdata's user value). Field i lives at
 * i + 1, in the array part: smaller than the same data keyed by name. */
#define CS_SLOT(f) ((f) + 1)
#define CS_SLOT_SAVED (F_COUNT + 1) /* field values before their first edit */
#define CS_SLOT_EXTRA (F_COUNT + 2) /* server keys outside the field table */
#define CS_STORE_SIZE (F_COUNT + 2)

/* Scalars live in C; every Lua value lives in the store, so an error raised
 * half-way leaks nothing and the collector sees everything. */
typedef struct cs_campaign {
  uint32_t dirty; /* bit f: field f changed since the last apply/clear */
  int closed;
  /* the last validate() found no problem, and nothing it reads changed
   * since: the next one answers true at once (see cs_store_changed) */
  int validated;
} cs_campaign;

/* The fields validate() reads (rules.c): a change to any other leaves its
 * answer as it was. */
#define CS_VALIDATE_READS                                                    \
  ((uint32_t)1 << F_ID | (uint32_t)1 << F_NAME | (uint32_t)1 << F_VARIANTS | \
   (uint32_t)1 << F_SEQUENCES | (uint32_t)1 << F_WINDOW_START |              \
   (uint32_t)1 << F_WINDOW_START_MINUTE | (uint32_t)1 << F_WINDOW_END |      \
   (uint32_t)1 << F_WINDOW_END_MINUTE | (uint32_t)1 << F_RAMP_ENABLED |      \
   (uint32_t)1 << F_RAMP_INCREMENT | (uint32_t)1 << F_RAMP_MAX)

/* Upvalues of every function of the type (luaL_setfuncs with 2). */
#define CS_UV_NAMES lua_upvalueindex(1)   /* field name -> field number */
#define CS_UV_METHODS lua_upvalueindex(2) /* core.campaign_methods */

/* A path to the value being checked, on the C stack and rendered only when
 * an error names it: "sequences[2].variants[1].subject_template". */
typedef struct cs_path {
  const struct cs_path *up;
  const char *name; /* a field name, or NULL for an array index */
  lua_Integer index;
} cs_path;

/* campaign.c */
cs_campaign *cs_check_campaign(lua_State *L, int idx); /* open, or raises */
/* Pushes the store table of the campaign at ud; returns its index. */
int cs_push_store(lua_State *L, int ud);
/* Pushes the table at store[slot], putting a new one there first when the
 * slot holds none (nil, or a non-table from unchecked server data). */
void cs_push_slot_table(lua_State *L, int store, int slot);
void cs_make_writable(lua_State *L, int ud, int store, int f);
void cs_mark_dirty(lua_State *L, cs_campaign *c, int store, int f);
/* To be called by every change of the stored value of field f (now_nil:
 * it is nil now), including edits inside its tables: forgets a passed
 * validate() when the change may matter to it. */
void cs_store_changed(cs_campaign *c, int f, int now_nil);

/* campaign_check.c: each pushes the checked, normalised value or raises
 * "bad value for '<path>' (<rule> expected, got <value>)". */
void cs_check_field(lua_State *L, const cs_field *f, int idx, const cs_path *p);
void cs_check_variant(lua_State *L, int idx, const cs_path *p);
void cs_check_sequence(lua_State *L, int idx, const cs_path *p);
void cs_push_rule(lua_State *L, const cs_field *f);
void cs_push_described(lua_State *L, int idx);
const char *cs_push_key_text(lua_State *L, int idx); /* tostring of a key */
int cs_first_free_letter(lua_State *L, int variants);
void cs_check_name_unused(lua_State *L, int variants, int upto, int name,
                          const cs_path *p);
int cs_raise(lua_State *L, const cs_path *p, const char *rule, const char *got);
void cs_push_lenient(lua_State *L, const cs_field *f, int idx);
void cs_push_copy(lua_State *L, int idx);
int cs_next_step(lua_State *L, int sequences, int upto);

/* rules.c */
int cs_campaign_validate(lua_State *L);
int cs_campaign_split_evenly(lua_State *L);
void cs_push_step_out(lua_State *L, int variants, int copy);
int cs_step_as_stored(lua_State *L, int variants);

/* campaign_sync.c */
int cs_campaign_changes(lua_State *L);
int cs_campaign_request(lua_State *L);
int cs_campaign_apply(lua_State *L);
int cs_campaign_clear_dirty(lua_State *L);
int cs_campaign_discard(lua_State *L);
int cs_campaign_has_changes(lua_State *L);

#endif
