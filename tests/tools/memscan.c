/*
 * memscan: looks for key material in a live process's memory and in files,
 * for the perc "the node never holds an end-to-end key" test (issue 4,
 * done-when 2). Every readable mapping of the process is read through
 * /proc/PID/mem (root, or the same user with ptrace permitted), every file
 * is read whole; each key is searched for as raw octets, as lower- and
 * upper-case hex, and as standard and URL-safe base64 at each of the three
 * alignments a key can have inside a longer base64 text.
 *
 * Usage: memscan [--pid PID]... [--file PATH]... NAME=HEX...
 * Prints one line per key: "NAME raw=N hex=N base64=N" (hits over the
 * whole process and files) and exits 0; 2 on a usage or read error.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_KEYS     256
#define MAX_KEY_LEN  64
#define MAX_PATTERNS 12 /* raw, 2 hex, 3 x 2 base64 */
#define MAX_SOURCES  16
#define CHUNK	     (1u << 20)

enum form { FORM_RAW, FORM_HEX, FORM_B64, FORM_COUNT };

struct pattern {
	enum form form;
	size_t len;
	uint8_t b[2 * MAX_KEY_LEN + 1];
};

struct key {
	const char *name;
	size_t n_patterns;
	struct pattern p[MAX_PATTERNS];
	unsigned long hits[FORM_COUNT];
};

static struct key keys[MAX_KEYS];
static size_t n_keys;
static size_t max_pattern_len;

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void add_pattern(struct key *k, enum form f, const uint8_t *b,
			size_t len)
{
	struct pattern *p;

	if (!len || k->n_patterns == MAX_PATTERNS)
		return;
	/* URL-safe base64 equals the standard one when neither + nor / occurs:
	 * one pattern, so that one occurrence is one hit. */
	for (size_t i = 0; i < k->n_patterns; i++)
		if (k->p[i].len == len && !memcmp(k->p[i].b, b, len))
			return;
	p = &k->p[k->n_patterns++];
	p->form = f;
	p->len = len;
	memcpy(p->b, b, len);
	if (len > max_pattern_len)
		max_pattern_len = len;
}

/* Base64 of the whole 3-octet groups of in[0..len): every character is
 * determined by the key alone, whatever surrounds it in a longer text. */
static size_t b64_groups(const uint8_t *in, size_t len, bool url, uint8_t *out)
{
	static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
				  "stuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
			     in[i + 2];
		for (int s = 18; s >= 0; s -= 6) {
			char c = std[(v >> s) & 63];
			if (url && c == '+')
				c = '-';
			else if (url && c == '/')
				c = '_';
			out[o++] = (uint8_t)c;
		}
	}
	return o;
}

static int add_key(const char *arg)
{
	const char *eq = strchr(arg, '=');
	uint8_t raw[MAX_KEY_LEN], txt[2 * MAX_KEY_LEN + 1];
	size_t len, hexlen;
	struct key *k;

	if (!eq || eq == arg || n_keys == MAX_KEYS)
		return -1;
	hexlen = strlen(eq + 1);
	if (hexlen < 16 || hexlen % 2 || hexlen / 2 > MAX_KEY_LEN)
		return -1;
	len = hexlen / 2;
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(eq[1 + 2 * i]), lo = hexval(eq[2 + 2 * i]);
		if (hi < 0 || lo < 0)
			return -1;
		raw[i] = (uint8_t)(hi << 4 | lo);
	}
	k = &keys[n_keys++];
	k->name = strndup(arg, (size_t)(eq - arg));
	add_pattern(k, FORM_RAW, raw, len);
	for (int upper = 0; upper < 2; upper++) {
		for (size_t i = 0; i < len; i++)
			snprintf((char *)txt + 2 * i, 3,
				 upper ? "%02X" : "%02x", raw[i]);
		add_pattern(k, FORM_HEX, txt, 2 * len);
	}
	for (size_t skip = 0; skip < 3; skip++)
		for (int url = 0; url < 2; url++)
			add_pattern(
				k, FORM_B64, txt,
				b64_groups(raw + skip, len - skip, url, txt));
	return 0;
}

static void scan(const uint8_t *buf, size_t len, size_t fresh_from)
{
	for (size_t i = 0; i < n_keys; i++) {
		for (size_t j = 0; j < keys[i].n_patterns; j++) {
			const struct pattern *p = &keys[i].p[j];
			const uint8_t *at = buf, *end = buf + len;

			while ((at = memmem(at, (size_t)(end - at), p->b,
					    p->len))) {
				/* A hit wholly inside the carried-over
				 * overlap was counted by the last chunk. */
				if ((size_t)(at - buf) + p->len > fresh_from)
					keys[i].hits[p->form]++;
				at++;
			}
		}
	}
}

/* Reads fd from off to end (or to EOF when end is 0) in chunks that
 * overlap by the longest pattern, so no hit is split. */
static int scan_fd(int fd, uint64_t off, uint64_t end, uint8_t *buf)
{
	size_t carry = 0;

	while (!end || off < end) {
		size_t want = CHUNK, total, keep;
		ssize_t n;

		if (end && end - off < want)
			want = (size_t)(end - off);
		n = pread(fd, buf + carry, want, (off_t)off);
		if (n <= 0) /* EIO/EFAULT: an unbacked page of a mapping */
			return n < 0 && errno != EIO && errno != EFAULT ? -1
									: 0;
		total = carry + (size_t)n;
		scan(buf, total, carry);
		off += (uint64_t)n;
		keep = max_pattern_len - 1 < total ? max_pattern_len - 1
						   : total;
		memmove(buf, buf + total - keep, keep);
		carry = keep;
	}
	return 0;
}

/*
 * A mapping is skipped when nothing of it is in memory (smaps Rss and Swap
 * 0: every read would return zero pages) or when it is larger than MAX_REGION:
 * no Conclave process has data mappings that large, but an AddressSanitizer
 * build has its shadow memory (terabytes of metadata, never user data)
 * mapped readable, and reading it would take hours. ASan's heap is in
 * smaller mappings and is scanned.
 */
#define MAX_REGION (64ull << 30)

struct region {
	uint64_t lo, hi;
	bool readable, special;
	unsigned long rss_kb;
};

static int scan_pid(const char *pid, uint8_t *buf)
{
	char path[64], line[512];
	FILE *smaps;
	int mem, err = 0;
	unsigned regions = 0;
	uint64_t skipped = 0;
	struct region r = {0};
	bool have = false;

	snprintf(path, sizeof(path), "/proc/%s/smaps", pid);
	smaps = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%s/mem", pid);
	mem = open(path, O_RDONLY);
	if (!smaps || mem < 0) {
		fprintf(stderr, "memscan: pid %s: %s\n", pid, strerror(errno));
		if (smaps)
			fclose(smaps);
		if (mem >= 0)
			close(mem);
		return -1;
	}
	for (;;) {
		bool eof = !fgets(line, sizeof(line), smaps);
		uint64_t lo, hi;
		char perms[8] = "";
		unsigned long kb;

		/* A header line starts the next mapping: scan the last one. */
		if (eof || sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &lo, &hi,
				  perms) == 3) {
			if (have && r.readable && !r.special) {
				if (!r.rss_kb || r.hi - r.lo > MAX_REGION) {
					skipped += r.hi - r.lo;
				} else {
					if (scan_fd(mem, r.lo, r.hi, buf) < 0)
						err = -1;
					regions++;
				}
			}
			if (eof)
				break;
			r = (struct region){.lo = lo,
					    .hi = hi,
					    .readable = perms[0] == 'r',
					    .special =
						    strstr(line, "[vvar]") ||
						    strstr(line, "[vsyscall]")};
			have = true;
		} else if (sscanf(line, "Rss: %lu kB", &kb) == 1 ||
			   sscanf(line, "Swap: %lu kB", &kb) == 1) {
			r.rss_kb += kb; /* resident or swapped: there */
		}
	}
	fclose(smaps);
	close(mem);
	if (!regions) {
		fprintf(stderr, "memscan: pid %s: no readable mapping\n", pid);
		return -1;
	}
	if (skipped)
		fprintf(stderr,
			"memscan: pid %s: %u mappings read; skipped %" PRIu64
			" MiB not resident or > 64 GiB (sanitizer shadow)\n",
			pid, regions, skipped >> 20);
	return err;
}

int main(int argc, char **argv)
{
	const char *pids[MAX_SOURCES], *files[MAX_SOURCES];
	size_t n_pids = 0, n_files = 0;
	uint8_t *buf;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pid") && i + 1 < argc &&
		    n_pids < MAX_SOURCES)
			pids[n_pids++] = argv[++i];
		else if (!strcmp(argv[i], "--file") && i + 1 < argc &&
			 n_files < MAX_SOURCES)
			files[n_files++] = argv[++i];
		else if (add_key(argv[i]) < 0) {
			fprintf(stderr, "usage: memscan [--pid PID]... [--file "
					"PATH]... "
					"NAME=HEX(8-64 octets)...\n");
			return 2;
		}
	}
	if (!n_keys || (!n_pids && !n_files)) {
		fprintf(stderr, "memscan: nothing to scan\n");
		return 2;
	}
	buf = malloc(CHUNK + 2 * MAX_KEY_LEN + 1);
	if (!buf)
		return 2;
	for (size_t i = 0; i < n_pids; i++)
		if (scan_pid(pids[i], buf) < 0)
			rc = 2;
	for (size_t i = 0; i < n_files; i++) {
		int fd = open(files[i], O_RDONLY);

		if (fd < 0 || scan_fd(fd, 0, 0, buf) < 0) {
			fprintf(stderr, "memscan: %s: %s\n", files[i],
				strerror(errno));
			rc = 2;
		}
		if (fd >= 0)
			close(fd);
	}
	for (size_t i = 0; i < n_keys; i++)
		printf("%s raw=%lu hex=%lu base64=%lu\n", keys[i].name,
		       keys[i].hits[FORM_RAW], keys[i].hits[FORM_HEX],
		       keys[i].hits[FORM_B64]);
	free(buf);
	return rc;
}
