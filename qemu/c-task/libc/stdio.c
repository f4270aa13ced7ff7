/*
 * printf and friends for C programs in seL4 client tasks (qemu/c-task), minimal on purpose:
 * the task has no C library, and its only output is the kernel's debug console, which the
 * task's Rust runtime writes for us (memserver_sel4_console_write).
 *
 * Conversions: %d %i %u %x %X %o %c %s %p %%, with the flags '-' and '0', a field width
 * (digits or '*'), a precision for %s ('.' digits or '.*'), and the length modifiers hh h l ll
 * z t j. Anything else is written out as it stands. Output goes out in chunks of up to 128
 * bytes; the return value is the number of bytes written, as in C.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The task runtime's console (Rust, qemu/c-task/src/lib.rs). */
void memserver_sel4_console_write(const char *bytes, size_t len);

struct memserver_sel4_file {
    int unused;
};
static struct memserver_sel4_file console;
FILE *const stdout = &console;
FILE *const stderr = &console;

struct out {
    char buf[128];
    size_t len;
    int total;
};

static void flush(struct out *o) {
    if (o->len > 0) {
        memserver_sel4_console_write(o->buf, o->len);
        o->len = 0;
    }
}

static void put(struct out *o, char c) {
    if (o->len == sizeof o->buf) {
        flush(o);
    }
    o->buf[o->len++] = c;
    o->total++;
}

static void pad(struct out *o, char c, int n) {
    for (; n > 0; n--) {
        put(o, c);
    }
}

/* Writes `len` bytes of `s` in a field of `width` (left-justified with `left`). */
static void field(struct out *o, const char *s, size_t len, int width, int left, char fill) {
    int padding = width > (int)len ? width - (int)len : 0;
    if (!left) {
        pad(o, fill, padding);
    }
    for (size_t i = 0; i < len; i++) {
        put(o, s[i]);
    }
    if (left) {
        pad(o, ' ', padding);
    }
}

/* Writes an unsigned number in `base`, with a '-' before it if `negative`. */
static void number(struct out *o, uintmax_t value, unsigned base, int upper, int negative, int width, int left,
                   char fill) {
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char text[sizeof(uintmax_t) * 3 + 2];
    size_t at = sizeof text;
    do {
        text[--at] = digits[value % base];
        value /= base;
    } while (value != 0);
    if (negative && fill == '0') {
        /* The sign goes before the zeros. */
        put(o, '-');
        width = width > 0 ? width - 1 : 0;
    } else if (negative) {
        text[--at] = '-';
    }
    field(o, text + at, sizeof text - at, width, left, fill);
}

enum length { LEN_INT, LEN_CHAR, LEN_SHORT, LEN_LONG, LEN_LLONG, LEN_SIZE, LEN_PTRDIFF, LEN_MAX };

static uintmax_t unsigned_arg(va_list *args, enum length length) {
    switch (length) {
    case LEN_CHAR: return (unsigned char)va_arg(*args, unsigned int);
    case LEN_SHORT: return (unsigned short)va_arg(*args, unsigned int);
    case LEN_LONG: return va_arg(*args, unsigned long);
    case LEN_LLONG: return va_arg(*args, unsigned long long);
    case LEN_SIZE: return va_arg(*args, size_t);
    case LEN_PTRDIFF: return (uintmax_t)va_arg(*args, ptrdiff_t);
    case LEN_MAX: return va_arg(*args, uintmax_t);
    default: return va_arg(*args, unsigned int);
    }
}

static intmax_t signed_arg(va_list *args, enum length length) {
    switch (length) {
    case LEN_CHAR: return (signed char)va_arg(*args, int);
    case LEN_SHORT: return (short)va_arg(*args, int);
    case LEN_LONG: return va_arg(*args, long);
    case LEN_LLONG: return va_arg(*args, long long);
    case LEN_SIZE: return (intmax_t)va_arg(*args, size_t);
    case LEN_PTRDIFF: return va_arg(*args, ptrdiff_t);
    case LEN_MAX: return va_arg(*args, intmax_t);
    default: return va_arg(*args, int);
    }
}

int vfprintf(FILE *stream, const char *format, va_list ap) {
    (void)stream;
    struct out o = {.len = 0, .total = 0};
    va_list args;
    va_copy(args, ap);
    for (const char *p = format; *p != '\0'; p++) {
        if (*p != '%') {
            put(&o, *p);
            continue;
        }
        const char *start = p++;
        int left = 0;
        char fill = ' ';
        for (;; p++) {
            if (*p == '-') {
                left = 1;
            } else if (*p == '0') {
                fill = '0';
            } else {
                break;
            }
        }
        int width = 0;
        if (*p == '*') {
            width = va_arg(args, int);
            if (width < 0) {
                left = 1;
                width = -width;
            }
            p++;
        }
        for (; *p >= '0' && *p <= '9'; p++) {
            width = width * 10 + (*p - '0');
        }
        int precision = -1;
        if (*p == '.') {
            p++;
            precision = 0;
            if (*p == '*') {
                precision = va_arg(args, int);
                p++;
            }
            for (; *p >= '0' && *p <= '9'; p++) {
                precision = precision * 10 + (*p - '0');
            }
        }
        if (left) {
            fill = ' ';
        }
        enum length length = LEN_INT;
        if (*p == 'h') {
            length = p[1] == 'h' ? LEN_CHAR : LEN_SHORT;
            p += p[1] == 'h' ? 2 : 1;
        } else if (*p == 'l') {
            length = p[1] == 'l' ? LEN_LLONG : LEN_LONG;
            p += p[1] == 'l' ? 2 : 1;
        } else if (*p == 'z') {
            length = LEN_SIZE;
            p++;
        } else if (*p == 't') {
            length = LEN_PTRDIFF;
            p++;
        } else if (*p == 'j') {
            length = LEN_MAX;
            p++;
        }
        switch (*p) {
        case 'd':
        case 'i': {
            intmax_t v = signed_arg(&args, length);
            uintmax_t magnitude = v < 0 ? (uintmax_t)0 - (uintmax_t)v : (uintmax_t)v;
            number(&o, magnitude, 10, 0, v < 0, width, left, fill);
            break;
        }
        case 'u': number(&o, unsigned_arg(&args, length), 10, 0, 0, width, left, fill); break;
        case 'x': number(&o, unsigned_arg(&args, length), 16, 0, 0, width, left, fill); break;
        case 'X': number(&o, unsigned_arg(&args, length), 16, 1, 0, width, left, fill); break;
        case 'o': number(&o, unsigned_arg(&args, length), 8, 0, 0, width, left, fill); break;
        case 'p':
            put(&o, '0');
            put(&o, 'x');
            number(&o, (uintptr_t)va_arg(args, void *), 16, 0, 0, width > 2 ? width - 2 : 0, left, fill);
            break;
        case 'c': {
            char c = (char)va_arg(args, int);
            field(&o, &c, 1, width, left, ' ');
            break;
        }
        case 's': {
            const char *s = va_arg(args, const char *);
            if (s == NULL) {
                s = "(null)";
            }
            size_t len = 0;
            while (s[len] != '\0' && (precision < 0 || len < (size_t)precision)) {
                len++;
            }
            field(&o, s, len, width, left, ' ');
            break;
        }
        case '%': put(&o, '%'); break;
        default:
            /* Not supported: written as it stands (a '\0' ends the format). */
            for (const char *q = start; q <= p && *q != '\0'; q++) {
                put(&o, *q);
            }
            if (*p == '\0') {
                p--;
            }
            break;
        }
    }
    va_end(args);
    flush(&o);
    return o.total;
}

int vprintf(const char *format, va_list args) {
    return vfprintf(stdout, format, args);
}

int fprintf(FILE *stream, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int n = vfprintf(stream, format, args);
    va_end(args);
    return n;
}

int printf(const char *format, ...) {
    va_list args;
    va_start(args, format);
    int n = vfprintf(stdout, format, args);
    va_end(args);
    return n;
}

int putchar(int c) {
    char byte = (char)c;
    memserver_sel4_console_write(&byte, 1);
    return (unsigned char)byte;
}

int puts(const char *text) {
    memserver_sel4_console_write(text, strlen(text));
    memserver_sel4_console_write("\n", 1);
    return 0;
}
