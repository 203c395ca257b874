/*
 * tool_migrate.h: what wasp-migrate and wasp-restore --listen share: where
 * the bearer token comes from (never only the command line, which `ps`
 * shows to every user).
 */
#ifndef WASP_TOOL_MIGRATE_H
#define WASP_TOOL_MIGRATE_H

/* The shortest token taken (docs/migration.md): 16 characters. */
#define TOOL_TOKEN_MIN 16

/* The token: --token's value if given, else the first line of
 * --token-file, else $WASP_MIGRATE_TOKEN, else NULL. Exits on a bad file
 * (not a regular file, or group or others may access it: chmod 600) or
 * an unusable token (shorter than TOOL_TOKEN_MIN, longer than 400, spaces
 * or control characters). */
const char *tool_token(const char *opt_token, const char *opt_token_file);

#endif
