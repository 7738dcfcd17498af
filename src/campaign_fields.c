/* campaign_fields.c: the field tables as data (the campaign's, from the
 * X-macro list in campaign_fields.h, and those of a variant and a
 * follow-up), the wording of each kind's rule, and core.campaign_fields(),
 * the description coldsend.help and the docs are made from.
 * Calls: the Lua API only (to describe); checks nothing. */
#include <stdlib.h>
#include <string.h>

#include "campaign.h"

#define CS_FIELD_ROW(e, name, kind, flags, min, max, def) \
  {name, kind, flags, min, max, def},
const cs_field cs_campaign_fields[F_COUNT] = {CS_CAMPAIGN_FIELDS(CS_FIELD_ROW)};
#undef CS_FIELD_ROW
/* A variant (spec 6.5) and a follow-up (spec 6.6), checked like fields. */
const cs_field cs_variant_fields[CS_VARIANT_FIELD_COUNT] = {
    {"variant_name", K_LETTERS, 0, 1, 50, "A"},
    {"variant_label", K_STRING, 0, 1, 100, NULL},
    {"subject_template", K_STRING, CS_REQUIRED, 1, 500, NULL},
    {"email_content", K_STRING, CS_REQUIRED, 10, 100000, NULL},
    {"distribution_percent", K_INT, 0, 0, 100, NULL},
};

const cs_field cs_sequence_fields[CS_SEQUENCE_FIELD_COUNT] = {
    {"step_number", K_INT, 0, 2, 4, NULL},
    {"trigger_type", K_TRIGGER, CS_REQUIRED, 0, 0, NULL},
    {"wait_days", K_INT, CS_REQUIRED, 1, 30, NULL},
    {"enable_unsubscribe", K_BOOL, 0, 0, 0, NULL},
    {"variants", K_VARIANTS, 0, 0, 0, NULL},
};

/* The rule of each kind as messages and campaign_fields() word it; the
 * numbered ones take the field's min and max. */
static const char *const rules[] = {
    [K_UUID] = "UUID",
    [K_TEXT] = "string",
    [K_LIST] = "array of strings",
    [K_STRING] = "string of %d..%d characters",
    [K_INT] = "integer %d..%d",
    [K_BOOL] = "boolean",
    [K_TZ] = "IANA time zone name",
    [K_DATE] = "ISO 8601 date-time or seconds since the epoch",
    [K_UUIDS] = "array of 1 or more UUIDs",
    [K_DAYS] = "array of %d..%d days",
    [K_MAP] = "table of lead field = CSV column with an 'email' key",
    [K_VARIANTS] = "array of variant tables",
    [K_SEQUENCES] = "array of follow-up tables",
    [K_LETTERS] = "string of %d..%d letters",
    [K_TRIGGER] = "NOT_OPENED, NOT_REPLIED or OPENED_BUT_NOT_REPLIED",
};

void cs_push_rule(lua_State *L, const cs_field *f) {
  /* extra arguments are ignored by the rules without numbers */
  lua_pushfstring(L, rules[f->kind], f->min, f->max);
}

static void push_default(lua_State *L, const cs_field *f) {
  const char *d = f->def;
  if (d == NULL) {
    lua_pushnil(L);
  } else if (f->kind == K_INT) {
    lua_pushinteger(L, (lua_Integer)strtol(d, NULL, 10));
  } else if (f->kind == K_BOOL) {
    lua_pushboolean(L, strcmp(d, "true") == 0);
  } else if (f->kind == K_DAYS) { /* "1,2,3,4,5" */
    int n = 0;
    lua_newtable(L);
    for (; *d != '\0'; d++) {
      if (*d == ',') continue;
      lua_pushinteger(L, *d - '0');
      lua_rawseti(L, -2, ++n);
    }
  } else {
    lua_pushstring(L, d);
  }
}

/* The type of each kind, as coldsend.help shows it. */
static const char *const type_names[] = {
    [K_UUID] = "string",     [K_TEXT] = "string",    [K_LIST] = "array",
    [K_STRING] = "string",   [K_INT] = "integer",    [K_BOOL] = "boolean",
    [K_TZ] = "string",       [K_DATE] = "date-time", [K_UUIDS] = "array",
    [K_DAYS] = "array",      [K_MAP] = "table",      [K_VARIANTS] = "array",
    [K_SEQUENCES] = "array", [K_LETTERS] = "string", [K_TRIGGER] = "string",
};

int cs_campaign_fields_list(lua_State *L) {
  int i;
  lua_createtable(L, F_COUNT, 0);
  for (i = 0; i < F_COUNT; i++) {
    const cs_field *f = &cs_campaign_fields[i];
    lua_createtable(L, 0, 5);
    lua_pushstring(L, f->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, type_names[f->kind]);
    lua_setfield(L, -2, "type");
    if (f->flags & CS_READONLY)
      lua_pushliteral(L, "set by the server");
    else
      cs_push_rule(L, f);
    lua_setfield(L, -2, "rule");
    push_default(L, f);
    lua_setfield(L, -2, "default");
    lua_pushboolean(L, (f->flags & CS_READONLY) != 0);
    lua_setfield(L, -2, "readonly");
    lua_pushboolean(L, (f->flags & CS_CREATE) != 0);
    lua_setfield(L, -2, "create"); /* sent by a POST /campaigns */
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}
