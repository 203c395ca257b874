/*
 * tool_migrate.h: what wasp-migrate and wasp-restore --listen share: where
 * the bearer token comes from (never only the command line, which `ps`
 * shows to every user).
 */
#ifndef WASP_TOOL_MIGRATE_H
#define WASP_TOOL_MIGRATE_H

/* The token: --token's value if given, else the first line of
 * --token-file, else $WASP_MIGRATE_TOKEN, else NULL. Exits on a bad file
 * or an unusable token (empty, control characters, longer than 400). */
const char *tool_token(const char *opt_token, const char *opt_token_file);

#endif
