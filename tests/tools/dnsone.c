/* dnsone ADDR IP: a DNS server with one answer, for the rig's --net user
 * scenario (f0), where L1 has no resolver: on UDP port 53 of ADDR it
 * answers each query for an A record of any name with IP (TTL 60), and
 * any other query with no record, until it is killed. Each query's name
 * goes to stderr, "dnsone: NAME", so the scenario can tell that the
 * guest's query came through passt. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define HEADER 12

/* The question's name as dotted text in out, and its end (type and
 * class follow) in *end: 0, or -1 for a question that is not one. */
static int question(const uint8_t *m, size_t len, char *out, size_t outlen, size_t *end)
{
	size_t at = HEADER, o = 0;

	while (at < len && m[at]) {
		size_t n = m[at];

		/* A label of at most 63 bytes, no pointer in a question. */
		if (n > 63 || at + 1 + n >= len || o + n + 2 > outlen)
			return -1;
		if (o)
			out[o++] = '.';
		for (size_t i = 0; i < n; i++) {
			uint8_t c = m[at + 1 + i];
			out[o++] = c > 0x20 && c < 0x7f ? (char)c : '?';
		}
		at += 1 + n;
	}
	out[o] = '\0';
	if (at + 1 + 4 > len)
		return -1;
	*end = at + 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(53)};
	struct in_addr ip;
	int s;

	if (argc != 3 || inet_pton(AF_INET, argv[1], &me.sin_addr) != 1 ||
	    inet_pton(AF_INET, argv[2], &ip) != 1) {
		fprintf(stderr, "usage: dnsone ADDR IP (IPv4 addresses)\n");
		return 2;
	}
	if ((s = socket(AF_INET, SOCK_DGRAM, 0)) < 0 ||
	    bind(s, (struct sockaddr *)&me, sizeof(me)) < 0) {
		perror("dnsone: port 53");
		return 1;
	}
	for (;;) {
		uint8_t m[512 + 16];
		char name[256];
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(s, m, 512, 0, (struct sockaddr *)&from, &flen);
		size_t end;

		/* One question, a query (QR clear). */
		if (n < HEADER || (m[2] & 0x80) || m[4] != 0 || m[5] != 1 ||
		    question(m, (size_t)n, name, sizeof(name), &end) < 0)
			continue;
		fprintf(stderr, "dnsone: %s\n", name);
		bool a = m[end] == 0 && m[end + 1] == 1 && m[end + 2] == 0 && m[end + 3] == 1;
		size_t len = end + 4;

		m[2] = 0x80 | (m[2] & 0x01); /* a response, RD as asked */
		m[3] = 0x80;		     /* RA, no error */
		memset(m + 6, 0, 6);	     /* answers, authority, additional */
		if (a) {
			const uint8_t rr[] = {0xc0, HEADER, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};

			m[7] = 1;
			memcpy(m + len, rr, sizeof(rr));
			memcpy(m + len + sizeof(rr), &ip, 4);
			len += sizeof(rr) + 4;
		}
		sendto(s, m, len, 0, (struct sockaddr *)&from, flen);
	}
}
