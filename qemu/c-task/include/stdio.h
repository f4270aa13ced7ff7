/*
 * stdio.h of the seL4 C task runtime (qemu/c-task): the few output calls a C program of a
 * memserver client task needs, written to the kernel's debug console. Not glibc: the task is
 * freestanding (-ffreestanding -nostdinc); see libc/stdio.c for what the formats support.
 */
#ifndef MEMSERVER_SEL4_STDIO_H
#define MEMSERVER_SEL4_STDIO_H

#include <stdarg.h>
#include <stddef.h>

/* Both streams are the debug console. */
typedef struct memserver_sel4_file FILE;
extern FILE *const stdout;
extern FILE *const stderr;

int printf(const char *format, ...) __attribute__((format(printf, 1, 2)));
int fprintf(FILE *stream, const char *format, ...) __attribute__((format(printf, 2, 3)));
int vprintf(const char *format, va_list args);
int vfprintf(FILE *stream, const char *format, va_list args);
int putchar(int c);
int puts(const char *text);

#endif
