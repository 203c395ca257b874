/*
 * args.c: argv, the environment and the auxiliary vector, all printed.
 * Natively the test runs it under `env -i NAME=VALUE...`, so both sides
 * see exactly the variables the test names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

extern char **environ;

int main(int argc, char **argv)
{
	printf("argc %d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d] (%zu bytes) [%s]\n", i, strlen(argv[i]), argv[i]);
	printf("argv[argc] is NULL: %s\n", argv[argc] ? "no" : "yes");
	int n = 0;
	for (char **e = environ; *e; e++)
		printf("env[%d] [%s]\n", n++, *e);
	printf("environment: %d entries\n", n);
	const char *look[] = {"HOME", "EMPTY", "WITH_EQUALS", "PATH", "UNSET_ONE"};
	for (unsigned i = 0; i < sizeof look / sizeof look[0]; i++) {
		const char *v = getenv(look[i]);
		printf("getenv %s: %s%s%s\n", look[i], v ? "[" : "(unset)", v ? v : "", v ? "]" : "");
	}
	setenv("ADDED", "by setenv", 1);
	unsetenv("HOME");
	printf("after setenv/unsetenv: ADDED=[%s] HOME %s\n", getenv("ADDED"), getenv("HOME") ? "set" : "unset");

	printf("AT_PAGESZ %lu\n", getauxval(AT_PAGESZ));
	printf("AT_SECURE %lu\n", getauxval(AT_SECURE));
	printf("AT_PHENT %lu, AT_PHNUM > 0: %s\n", getauxval(AT_PHENT), getauxval(AT_PHNUM) ? "yes" : "no");
	printf("AT_ENTRY set: %s\n", getauxval(AT_ENTRY) ? "yes" : "no");
	const char *fn = (const char *)getauxval(AT_EXECFN);
	printf("AT_EXECFN equals argv[0]: %s\n", fn && !strcmp(fn, argv[0]) ? "yes" : "no");
	return 0;
}
