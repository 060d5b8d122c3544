#include "config/cmdline.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kernel's isspace() (lib/ctype.c): ASCII white space and Latin-1's
 * no-break space. */
static bool kspace(char ch)
{
	unsigned char c = (unsigned char)ch;
	return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xa0;
}

static const char *skip_spaces(const char *s)
{
	while (kspace(*s))
		s++;
	return s;
}

size_t cmdline_split(const char *s, const char **init)
{
	const char *p = skip_spaces(s);

	*init = NULL;
	while (*p) {
		/* One word, as lib/cmdline.c's next_arg() delimits it. */
		const char *word = p, *a = p;
		bool quoted = *a == '"', in_quote = quoted, equals = false;
		size_t i, n;

		a += quoted;
		for (i = 0; a[i] && (in_quote || !kspace(a[i])); i++) {
			equals |= a[i] == '=' && i > 0;
			if (a[i] == '"')
				in_quote = !in_quote;
		}
		n = i;
		if (quoted && n > 0 && a[n - 1] == '"')
			n--;
		if (!equals && n == 2 && a[0] == '-' && a[1] == '-') {
			size_t k = word - s;
			while (k > 0 && kspace(s[k - 1]))
				k--;
			*init = skip_spaces(a + i);
			return k;
		}
		p = skip_spaces(a + i);
	}
	return strlen(s);
}

/* A growing string: append n bytes of s, a space first unless empty. */
struct sbuf {
	char *s; /* room enough for everything put, counted beforehand */
	size_t len;
};

static void put(struct sbuf *b, const char *s, size_t n)
{
	if (!n)
		return;
	if (b->len)
		b->s[b->len++] = ' ';
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* s without the white space at its ends: *n bytes from the result. */
static const char *trim(const char *s, size_t len, size_t *n)
{
	while (len && kspace(*s))
		s++, len--;
	while (len && kspace(s[len - 1]))
		len--;
	*n = len;
	return s;
}

static void put_trimmed(struct sbuf *b, const char *s, size_t len)
{
	size_t n;
	s = trim(s, len, &n);
	put(b, s, n);
}

/* Whether s ends inside double quotes. The kernel's next_arg() turns its
 * in-quote state over at every '"' and ends a word only at white space
 * outside quotes, so each word holds an even number of them but the last,
 * which, open, runs on to the end of the whole line. */
static bool open_quote(const char *s)
{
	bool open = false;

	for (; *s; s++)
		open ^= *s == '"';
	return open;
}

int cmdline_check(const char *field, const char *s, size_t max, char *err, size_t errlen)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return err_set(err, errlen, -EINVAL,
				       "%s: the kernel command line is invalid: byte 0x%02x at "
				       "offset %zu is not printable ASCII",
				       field, (unsigned char)s[i], i);
	if (n >= max)
		return err_set(err, errlen, -EINVAL,
			       "%s: the kernel command line is invalid: %zu bytes, longer than "
			       "the %zu the kernel takes",
			       field, n, max - 1);
	if (open_quote(s))
		return err_set(err, errlen, -EINVAL,
			       "%s: the kernel command line is invalid: it leaves a double quote "
			       "open, and the kernel would read flint's device arguments as part "
			       "of its last word",
			       field);
	return 0;
}

char *cmdline_build(const struct cmdline_parts *p, size_t max, char *err, size_t errlen)
{
	const char *pieces[2] = {p->base ? p->base : "", p->append ? p->append : ""};
	const char *init[2];
	size_t klen[2], cap = 8, ilen;
	bool has_init = p->nwords > 0;
	struct sbuf b = {0};

	for (int k = 0; k < 2; k++) {
		/* What follows it (flint's device arguments, init's words)
		 * would become part of that word and never reach the kernel
		 * or init as arguments of their own. */
		if (open_quote(pieces[k])) {
			snprintf(err, errlen,
				 "%s leaves a double quote open: the kernel would read flint's "
				 "device arguments and whatever follows as part of its last word",
				 k ? "--append" : "--cmdline");
			return NULL;
		}
		klen[k] = cmdline_split(pieces[k], &init[k]);
		cap += strlen(pieces[k]) + 1;
		if (init[k]) {
			trim(init[k], strlen(init[k]), &ilen);
			has_init |= ilen > 0;
		}
	}
	/* The kernel hands init the words up to a second "--" and drops the
	 * rest: refuse an init part with one that anything follows (its own
	 * words, --append's, flint's), as flint refuses a "--" word of its own. */
	for (int k = 0; k < 2; k++) {
		const char *after;
		size_t n = 0;
		if (!init[k] || (cmdline_split(init[k], &after), !after))
			continue;
		trim(after, strlen(after), &n);
		if (n || p->nwords > 0 || (k == 0 && init[1] && *skip_spaces(init[1]))) {
			snprintf(err, errlen,
				 "%s: a second \"--\" ends init's arguments, and the kernel would "
				 "drop the words after it",
				 k ? "--append" : "--cmdline");
			return NULL;
		}
	}
	if (p->devices)
		cap += strlen(p->devices) + 1;
	for (int i = 0; i < p->nwords; i++) {
		const char *w = p->words[i];
		/* The kernel groups words with double quotes and knows no escape;
		 * a second "--" would end init's arguments, dropping the rest. */
		if (strchr(w, '"') || !strcmp(w, "--")) {
			snprintf(
			    err, errlen,
			    "guest command word %d (%.40s) cannot be passed on the kernel command "
			    "line: %s",
			    i + 1, w,
			    strchr(w, '"') ? "it holds a double quote"
					   : "the kernel would end init's arguments there");
			return NULL;
		}
		cap += strlen(w) + 3;
	}
	if (!(b.s = malloc(cap))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	b.s[0] = '\0';
	put_trimmed(&b, pieces[0], klen[0]);
	put_trimmed(&b, pieces[1], klen[1]);
	if (p->devices)
		put_trimmed(&b, p->devices, strlen(p->devices));
	if (has_init) {
		put(&b, "--", 2);
		for (int k = 0; k < 2; k++)
			if (init[k])
				put_trimmed(&b, init[k], strlen(init[k]));
		for (int i = 0; i < p->nwords; i++) {
			const char *w = p->words[i];
			bool quote = !*w;
			for (const char *c = w; *c && !quote; c++)
				quote = kspace(*c);
			if (b.len)
				b.s[b.len++] = ' ';
			b.len += sprintf(b.s + b.len, quote ? "\"%s\"" : "%s", w);
		}
	}
	if (b.len + 1 > max) {
		snprintf(err, errlen,
			 "kernel command line too long: %zu bytes with flint's device arguments, "
			 "the kernel takes at most %zu; shorten --cmdline, --append or the guest "
			 "command",
			 b.len, max - 1);
		free(b.s);
		return NULL;
	}
	return b.s;
}
