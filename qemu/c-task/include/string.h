/*
 * string.h of the seL4 C task runtime (qemu/c-task): the memory functions and strlen. Their
 * code is Rust's compiler-builtins, built with its `mem` feature for the seL4 targets
 * (qemu/.cargo/config.toml), which every task links anyway.
 */
#ifndef MEMSERVER_SEL4_STRING_H
#define MEMSERVER_SEL4_STRING_H

#include <stddef.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
