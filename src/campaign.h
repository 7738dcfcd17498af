/* campaign.h: the coldsend.campaign type shared by the campaign files: the
 * userdata and its store table, the error path, and what each file gives
 * the others. The map:
 *   campaign.c           the userdata: new, fields, add_variant/sequence,
 *                        pairs, tostring, close, registration
 *   campaign_fields.c    the field tables and core.campaign_fields()
 *   campaign_setters.c   per-value rules at assignment
 *   campaign_errors.c    the messages those rules raise
 *   campaign_validate.c  cross-field rules: validate()
 *   campaign_changes.c   what a save sends: changes(), _request, split
 *   campaign_apply.c     what the server answers: _apply, _clear_dirty,
 *                        _discard */
#ifndef COLDSEND_CAMPAIGN_H
#define COLDSEND_CAMPAIGN_H

#include <stddef.h>
#include <stdint.h>

#include "campaign_fields.h"
#include "compat.h"

#define CS_CAMPAIGN_TYPE "coldsend.campaign"

/* Slots of the store table (the userdata's user value). Field i lives at
 * i + 1, in the array part: smaller than the same data keyed by name. */
#define CS_SLOT(f) ((f) + 1)
#define CS_SLOT_SAVED (F_COUNT + 1) /* field values before their first edit */
#define CS_SLOT_EXTRA (F_COUNT + 2) /* server keys outside the field table */
/* the campaign's URL (base .. "/campaigns/" .. id), made for the base and
 * the id at the two slots before it: a save does not build it again */
#define CS_SLOT_URL_BASE (F_COUNT + 3)
#define CS_SLOT_URL_ID (F_COUNT + 4)
#define CS_SLOT_URL (F_COUNT + 5)
#define CS_STORE_SIZE (F_COUNT + 5)

/* Scalars live in C; every Lua value lives in the store, so an error raised
 * half-way leaks nothing and the collector sees everything. */
typedef struct cs_campaign {
  uint32_t dirty; /* bit f: field f changed since the last apply/clear */
  int closed;
  /* the last validate() found no problem, and nothing it reads changed
   * since: the next one answers true at once (see cs_store_changed) */
  int validated;
} cs_campaign;

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

/* campaign_errors.c: "bad value for '<path>' (<rule> expected, got
 * <value>)". The raisers never return (luaL_error); their int is for
 * `return cs_raise(...)`. */
int cs_raise(lua_State *L, const cs_path *p, const char *rule, const char *got);
int cs_raise_type(lua_State *L, const cs_path *p, const char *rule, int idx);
int cs_raise_value(lua_State *L, const cs_path *p, const char *rule, int idx);
/* The rule of f; the value's type named when wrong_type, else the value. */
int cs_raise_rule(lua_State *L, const cs_field *f, const cs_path *p, int idx,
                  int wrong_type);
/* "no field 'k' in <what> '<path>'" for the first key of the table at idx
 * that is none of the nfields fields. */
void cs_raise_unknown_key(lua_State *L, int idx, const cs_path *p,
                          const cs_field *fields, size_t nfields,
                          const char *what);
void cs_push_described(lua_State *L, int idx);       /* 150, "text", nil, ... */
const char *cs_push_key_text(lua_State *L, int idx); /* tostring of a key */
/* Counts code points; 0 on invalid UTF-8 (overlongs, surrogates...). */
int cs_utf8_length(const char *s, size_t len, size_t *chars);

/* campaign_setters.c: each pushes the checked, normalised value or raises
 * through campaign_errors.c. */
void cs_check_field(lua_State *L, const cs_field *f, int idx, const cs_path *p);
void cs_check_variant(lua_State *L, int idx, const cs_path *p);
void cs_check_sequence(lua_State *L, int idx, const cs_path *p);
int cs_first_free_letter(lua_State *L, int variants);
void cs_check_name_unused(lua_State *L, int variants, int upto, int name,
                          const cs_path *p);
int cs_next_step(lua_State *L, int sequences, int upto);

/* campaign_validate.c */
int cs_campaign_validate(lua_State *L);
int cs_campaign_validate_fresh(lua_State *L);

/* campaign_changes.c */
int cs_campaign_changes(lua_State *L);
int cs_campaign_request(lua_State *L);
int cs_campaign_has_changes(lua_State *L);
int cs_campaign_split_evenly(lua_State *L);

/* campaign_apply.c */
int cs_campaign_apply(lua_State *L);
int cs_campaign_clear_dirty(lua_State *L);
int cs_campaign_discard(lua_State *L);

#endif
