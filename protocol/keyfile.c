/* SPDX-License-Identifier: Apache-2.0 */
/* keyfile.c -- reading and writing CurveZMQ key files (format in alphatop/keyfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alphatop/keyfile.h"

static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                ".-:+=^!/*?&<>()[]{}@%$#";

int at_key_is_z85(const char *s)
{
    if (!s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= AT_KEY_Z85_LEN || !strchr(z85_chars, s[n]))
            return 0;
    return n == AT_KEY_Z85_LEN;
}

static int fail(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int status, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* Trims leading and trailing blanks in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Splits `name = "value"` (quotes optional). Returns 0 if the line has no '='. */
static int split(char *line, char **name, char **value)
{
    char *eq = strchr(line, '=');
    if (!eq)
        return 0;
    *eq = '\0';
    *name = trim(line);
    char *v = trim(eq + 1);
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v[n - 1] = '\0';
        v++;
    }
    *value = v;
    return 1;
}

int at_keyfile_read(const char *path, char *public_key, char *secret_key, char *err, size_t errlen)
{
    if (!path || !public_key)
        return fail(err, errlen, AT_ERR_ARG, "no key file given");
    FILE *fp = fopen(path, "r");
    if (!fp)
        return fail(err, errlen, AT_ERR_IO, "%s: %s", path, strerror(errno));
    public_key[0] = '\0';
    if (secret_key)
        secret_key[0] = '\0';
    char line[512];
    int lineno = 0, rc = AT_OK;
    while (rc == AT_OK && fgets(line, sizeof line, fp)) {
        lineno++;
        char *s = trim(line), *name, *value;
        if (*s == '\0' || *s == '#')
            continue;
        if (!split(s, &name, &value)) {
            rc = fail(err, errlen, AT_ERR_FORMAT, "%s:%d: expected name = \"value\"", path, lineno);
            break;
        }
        int is_pub = strcmp(name, "public-key") == 0, is_sec = strcmp(name, "secret-key") == 0;
        if ((is_pub || is_sec) && !at_key_is_z85(value))
            rc = fail(err, errlen, AT_ERR_FORMAT, "%s:%d: %s is not a 40-character Z85 key", path,
                      lineno, name);
        else if (is_pub)
            memcpy(public_key, value, AT_KEY_Z85_LEN + 1);
        else if (is_sec && secret_key)
            memcpy(secret_key, value, AT_KEY_Z85_LEN + 1);
    }
    fclose(fp);
    if (rc != AT_OK)
        return rc;
    if (!public_key[0])
        return fail(err, errlen, AT_ERR_FORMAT, "%s: no public-key line", path);
    if (secret_key && !secret_key[0])
        return fail(err, errlen, AT_ERR_MISSING, "%s: no secret-key line (a .pub file?)", path);
    return AT_OK;
}

int at_keyfile_check_private(const char *path, char *warn, size_t warnlen)
{
    struct stat st;
    if (!path || stat(path, &st) != 0)
        return fail(warn, warnlen, AT_ERR_IO, "%s: %s", path ? path : "(no key file)",
                    path ? strerror(errno) : "none given");
    if (st.st_uid != getuid())
        return fail(warn, warnlen, AT_ERR_AUTH,
                    "%s: owned by user %lu, not by this user (%lu): whoever owns it can read or "
                    "replace the secret key",
                    path, (unsigned long)st.st_uid, (unsigned long)getuid());
    if (st.st_mode & 077)
        return fail(warn, warnlen, AT_ERR_AUTH,
                    "%s: mode %04o gives other users access to the secret key (chmod 600 %s)", path,
                    (unsigned)(st.st_mode & 07777), path);
    return AT_OK;
}

/* Writes text to path, created with mode (an existing file is replaced). */
static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return AT_ERR_IO;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int rc = (w == (ssize_t)n && fchmod(fd, mode) == 0) ? AT_OK : AT_ERR_IO;
    if (close(fd) != 0)
        rc = AT_ERR_IO;
    return rc;
}

int at_keyfile_write(const char *path, const char *public_key, const char *secret_key)
{
    if (!path || !at_key_is_z85(public_key) || !at_key_is_z85(secret_key))
        return AT_ERR_ARG;
    char text[512], pub_path[4096];
    if ((size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", path) >= sizeof pub_path)
        return AT_ERR_ARG;
    snprintf(text, sizeof text,
             "# alphatop CurveZMQ key: keep this file private\n"
             "public-key = \"%s\"\nsecret-key = \"%s\"\n",
             public_key, secret_key);
    int rc = write_file(path, text, 0600);
    if (rc != AT_OK)
        return rc;
    snprintf(text, sizeof text, "# alphatop CurveZMQ public key\npublic-key = \"%s\"\n",
             public_key);
    return write_file(pub_path, text, 0644);
}

int at_keyfile_read_list(const char *path, char (*keys)[AT_KEY_Z85_LEN + 1], size_t cap, size_t *n,
                         char *err, size_t errlen)
{
    if (!path || !keys || !n)
        return fail(err, errlen, AT_ERR_ARG, "no allow-list given");
    *n = 0;
    FILE *fp = fopen(path, "r");
    if (!fp)
        return fail(err, errlen, AT_ERR_IO, "%s: %s", path, strerror(errno));
    char line[512];
    int lineno = 0, rc = AT_OK;
    while (rc == AT_OK && fgets(line, sizeof line, fp)) {
        lineno++;
        char *s = trim(line), *name = NULL, *value = s;
        /* A bare Z85 key may itself start with '#'. */
        if (*s == '\0' || (*s == '#' && !at_key_is_z85(s)))
            continue;
        /* A bare key may hold '=' too (a Z85 character): only a line that is not one is split. */
        if (!at_key_is_z85(s) && split(s, &name, &value) && strcmp(name, "public-key") != 0)
            continue; /* a secret-key line of a full key file is not an allowed key */
        if (!at_key_is_z85(value))
            rc = fail(err, errlen, AT_ERR_FORMAT, "%s:%d: not a 40-character Z85 public key", path,
                      lineno);
        else if (*n == cap)
            rc = fail(err, errlen, AT_ERR_SIZE, "%s: more than %zu keys", path, cap);
        else
            memcpy(keys[(*n)++], value, AT_KEY_Z85_LEN + 1);
    }
    fclose(fp);
    return rc;
}
