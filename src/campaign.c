/* campaign.c: placeholder until the campaign part lands. */
#include "core.h"

void cs_campaign_open(lua_State *L) { (void)L; }
