/* snapfile (issue 12): a state file reads back as written (header, CPU,
 * vm_config, sections), in memory and through an atomic file write; each
 * refusal says which it is: not a snapshot, another format version,
 * truncated (at every byte), corrupt (a bit flipped anywhere, trailing
 * bytes, and structures that lie under a valid checksum: lengths, counts,
 * empty, unprintable and duplicate ids), a vm_config the parser refuses;
 * a CPU with another vendor or missing a feature bit is incompatible, one
 * with more is fine. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "config/config_json.h"
#include "core/version.h"
#include "core/wire.h"
#include "snapshot/snapfile.h"
#include "write_file.h"

static char err[1024];

#define ERR_HAS(s) cr_assert_not_null(strstr(err, s), "'%s' not in '%s'", s, err)

static const char config_text[] =
    "{\"boot-source\": {\"kernel_image_path\": \"vmlinux\", \"boot_args\": \"console=ttyS0\"},"
    " \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"rootfs.ext4\","
    "               \"is_root_device\": true, \"is_read_only\": false}],"
    " \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 256},"
    " \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}}";

static const uint8_t vcpu0[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
static const char serial[] = "serial-state";

static void test_cpu(struct snap_cpu *c)
{
	*c = (struct snap_cpu){.vendor = "GenuineIntel", .n = 3};
	c->w[0] = (struct snap_cpu_word){.leaf = 1, .subleaf = 0, .reg = 2, .value = 0x80202001};
	c->w[1] = (struct snap_cpu_word){.leaf = 1, .subleaf = 0, .reg = 3, .value = 0x078bfbff};
	c->w[2] = (struct snap_cpu_word){.leaf = 7, .subleaf = 0, .reg = 1, .value = 0x000001ab};
}

static void test_config(struct vm_config *c)
{
	cr_assert_eq(config_json_parse_file(config_text, strlen(config_text), c, err, sizeof(err)),
		     0, "%s", err);
}

/* A writer with the test CPU, config and three sections (one empty). */
static void test_writer(struct snap_writer *w)
{
	struct snap_cpu cpu;
	struct vm_config c;

	test_cpu(&cpu);
	test_config(&c);
	cr_assert_eq(snap_writer_init(w, &cpu, &c, err, sizeof(err)), 0, "%s", err);
	vm_config_free(&c);
	cr_assert_eq(snap_writer_add(w, "vcpu0", vcpu0, sizeof(vcpu0)), 0);
	cr_assert_eq(snap_writer_add(w, "serial", serial, strlen(serial)), 0);
	cr_assert_eq(snap_writer_add(w, "block_rootfs", NULL, 0), 0);
}

static void test_file(struct wbuf *b)
{
	struct snap_writer w;

	test_writer(&w);
	cr_assert_eq(snap_encode(&w, b), 0);
	snap_writer_free(&w);
}

static void check_test_snap(struct snap *s)
{
	struct snap_cpu cpu;
	struct vm_config c;
	const uint8_t *p;
	size_t n;

	cr_assert_str_eq(s->flint_version, FLINT_VERSION);
	test_cpu(&cpu);
	cr_assert_str_eq(s->cpu.vendor, "GenuineIntel");
	cr_assert_eq(s->cpu.n, 3);
	cr_assert_eq(memcmp(s->cpu.w, cpu.w, 3 * sizeof(cpu.w[0])), 0);
	test_config(&c);
	cr_assert(vm_config_equal(&s->config, &c));
	vm_config_free(&c);
	cr_assert_eq(s->config.machine.vcpu_count, 2);

	cr_assert_eq(s->n, 3);
	cr_assert_str_eq(s->s[0].id, "vcpu0");
	cr_assert_str_eq(s->s[1].id, "serial");
	cr_assert_str_eq(s->s[2].id, "block_rootfs");
	cr_assert_eq(snap_section(s, "vcpu0", &p, &n), 0);
	cr_assert_eq(n, sizeof(vcpu0));
	cr_assert_eq(memcmp(p, vcpu0, n), 0);
	cr_assert_eq(snap_section(s, "serial", &p, &n), 0);
	cr_assert_eq(n, strlen(serial));
	cr_assert_eq(memcmp(p, serial, n), 0);
	cr_assert_eq(snap_section(s, "block_rootfs", &p, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(snap_section(s, "vcpu1", &p, &n), -ENOENT);
}

Test(snapfile, round_trip)
{
	struct wbuf b;
	struct snap s;

	test_file(&b);
	cr_assert_eq(memcmp(b.p, SNAP_MAGIC, SNAP_MAGIC_LEN), 0);
	cr_assert_eq(snap_read(b.p, b.len, &s, err, sizeof(err)), 0, "%s", err);
	/* The snap holds its own copy. */
	memset(b.p, 0, b.len);
	wbuf_free(&b);
	check_test_snap(&s);
	snap_free(&s);
	snap_free(&s); /* twice is fine: empty */
}

/* What no lookup found is named, the first in file order. */
Test(snapfile, unread_sections)
{
	struct wbuf b;
	struct snap s;
	const uint8_t *p;
	size_t n;

	test_file(&b);
	cr_assert_eq(snap_read(b.p, b.len, &s, err, sizeof(err)), 0, "%s", err);
	wbuf_free(&b);
	cr_assert_str_eq(snap_unread(&s), "vcpu0");
	cr_assert_eq(snap_section(&s, "serial", &p, &n), 0);
	cr_assert_eq(snap_section(&s, "vcpu0", &p, &n), 0);
	cr_assert_eq(snap_section(&s, "vcpu1", &p, &n), -ENOENT);
	cr_assert_str_eq(snap_unread(&s), "block_rootfs");
	cr_assert_eq(snap_section(&s, "block_rootfs", &p, &n), 0);
	cr_assert_null(snap_unread(&s));
	snap_free(&s);
}

/* ---- the frame: magic, version, truncation, checksum ---------------------- */

static int read_err(const uint8_t *p, size_t n)
{
	struct snap s;
	int r;

	err[0] = '\0';
	r = snap_read(p, n, &s, err, sizeof(err));
	/* A refusal leaves nothing behind. */
	if (r < 0)
		cr_assert(s.n == 0 && s.s == NULL && s.buf == NULL && s.config.ndrives == 0);
	snap_free(&s);
	return r;
}

Test(snapfile, not_a_snapshot)
{
	static const char text[] = "{\"boot-source\": {}}\n";
	struct wbuf b;

	cr_assert_eq(read_err((const uint8_t *)text, strlen(text)), -EBADMSG);
	ERR_HAS("not a flint snapshot");
	cr_assert_eq(read_err((const uint8_t *)"X", 1), -EBADMSG);
	ERR_HAS("not a flint snapshot");

	test_file(&b);
	b.p[3] ^= 0x20;
	cr_assert_eq(read_err(b.p, b.len), -EBADMSG);
	cr_assert_str_eq(err, "not a flint snapshot");
	wbuf_free(&b);
}

Test(snapfile, other_format_version)
{
	struct wbuf b;
	uint32_t v = htole32(2);

	test_file(&b);
	memcpy(b.p + SNAP_MAGIC_LEN, &v, sizeof(v));
	cr_assert_eq(read_err(b.p, b.len), -EPROTONOSUPPORT);
	cr_assert_str_eq(err, "format version 2, this flint reads 1");
	wbuf_free(&b);
}

/* Every prefix, from nothing to one byte short, is "truncated at byte N",
 * N its length; each read from a buffer of exactly that size. */
Test(snapfile, truncated_at_every_byte)
{
	struct wbuf b;
	char want[64];

	test_file(&b);
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *p = malloc(n ? n : 1);

		memcpy(p, b.p, n);
		cr_assert_eq(read_err(p, n), -EBADMSG, "at %zu: %s", n, err);
		snprintf(want, sizeof(want), "truncated at byte %zu ", n);
		cr_assert_eq(strncmp(err, want, strlen(want)), 0, "at %zu: '%s'", n, err);
		free(p);
	}
	wbuf_free(&b);
}

/* One bit flipped anywhere: in the magic it is not a snapshot, in the
 * format version another version, anywhere else a checksum refusal. */
Test(snapfile, flipped_bit_anywhere)
{
	struct wbuf b;

	test_file(&b);
	for (size_t i = 0; i < b.len; i++)
		for (int bit = 0; bit < 8; bit++) {
			int r;

			b.p[i] ^= 1u << bit;
			r = read_err(b.p, b.len);
			if (i < SNAP_MAGIC_LEN) {
				cr_assert_eq(r, -EBADMSG);
				cr_assert_str_eq(err, "not a flint snapshot");
			} else if (i < SNAP_MAGIC_LEN + 4) {
				cr_assert_eq(r, -EPROTONOSUPPORT);
				cr_assert_eq(strncmp(err, "format version ", 15), 0, "%s", err);
			} else {
				cr_assert_eq(r, -EBADMSG, "byte %zu bit %d", i, bit);
				cr_assert_eq(strncmp(err, "corrupt: ", 9), 0, "byte %zu: %s", i,
					     err);
				cr_assert_not_null(strstr(err, "checksum"), "byte %zu: %s", i, err);
			}
			b.p[i] ^= 1u << bit;
		}
	cr_assert_eq(read_err(b.p, b.len), 0);
	wbuf_free(&b);
}

Test(snapfile, trailing_bytes)
{
	struct wbuf b;
	char want[64];

	test_file(&b);
	snprintf(want, sizeof(want), "corrupt: %zu bytes long, its header says %zu", b.len + 1,
		 b.len);
	wput_u8(&b, 0);
	cr_assert_eq(read_err(b.p, b.len), -EBADMSG);
	cr_assert_str_eq(err, want);
	wbuf_free(&b);
}

/* ---- structures that lie under a valid checksum ---------------------------- */

/* The header of a file whose body the test writes, sealed by seal(). */
static void raw_start(struct wbuf *b)
{
	wbuf_init(b);
	wput_bytes(b, SNAP_MAGIC, SNAP_MAGIC_LEN);
	wput_u32(b, SNAP_FORMAT_VERSION);
	wput_u64(b, 0);
	wput_u32(b, 0);
}

/* The start of a good body: version, vendor, no CPU words. */
static void raw_cpu(struct wbuf *b)
{
	wput_str(b, FLINT_VERSION);
	wput_str(b, "AuthenticAMD");
	wput_u32(b, 0);
}

/* Length, header CRC and the CRC at the end, as the writer would. */
static void seal(struct wbuf *b)
{
	uint64_t total = htole64(b->len + 4);
	uint32_t hcrc;

	memcpy(b->p + 12, &total, 8);
	hcrc = htole32((uint32_t)crc32(0, b->p, 20));
	memcpy(b->p + 20, &hcrc, 4);
	wput_u32(b, (uint32_t)crc32(0, b->p, b->len));
	cr_assert_eq(wbuf_err(b), 0);
}

/* A sealed file with the test config and the sections named, each with one
 * byte of data; extra, when not NULL, appended to the body before sealing. */
static void raw_sections(struct wbuf *b, const char *const *ids, unsigned n)
{
	raw_start(b);
	raw_cpu(b);
	wput_str(b, config_text);
	wput_u32(b, n);
	for (unsigned i = 0; i < n; i++) {
		wput_str(b, ids[i]);
		wput_blob(b, "x", 1);
	}
}

static void expect_refused(struct wbuf *b, int ret, const char *msg)
{
	seal(b);
	cr_assert_eq(read_err(b->p, b->len), ret, "%s", err);
	ERR_HAS(msg);
	wbuf_free(b);
}

Test(snapfile, sealed_good_file_reads)
{
	static const char *const ids[] = {"vcpu0", "serial"};
	struct wbuf b;

	/* The helpers make a file snap_read takes: the refusals below are the
	 * one thing each changes. */
	raw_sections(&b, ids, 2);
	seal(&b);
	cr_assert_eq(read_err(b.p, b.len), 0, "%s", err);
	wbuf_free(&b);
}

Test(snapfile, duplicate_section_id)
{
	static const char *const ids[] = {"vcpu0", "serial", "vcpu0"};
	struct wbuf b;

	raw_sections(&b, ids, 3);
	expect_refused(&b, -EBADMSG, "corrupt: section id 'vcpu0' twice");
}

Test(snapfile, empty_section_id)
{
	static const char *const ids[] = {"vcpu0", ""};
	struct wbuf b;

	raw_sections(&b, ids, 2);
	expect_refused(&b, -EBADMSG, "corrupt: section 1: an empty id");
}

Test(snapfile, unprintable_section_id)
{
	static const char *const ids[] = {"vcpu 0"};
	static const char *const ids2[] = {"vcpu\n"};
	struct wbuf b;

	raw_sections(&b, ids, 1);
	expect_refused(&b, -EBADMSG, "corrupt: section 0: an unprintable id");
	raw_sections(&b, ids2, 1);
	expect_refused(&b, -EBADMSG, "corrupt: section 0: an unprintable id");
}

Test(snapfile, section_id_too_long)
{
	char id[SNAP_MAX_ID + 2];
	const char *ids[] = {id};
	struct wbuf b;

	memset(id, 'a', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	raw_sections(&b, ids, 1);
	expect_refused(&b, -EBADMSG, "corrupt: section 0: a bad length for its id");
}

Test(snapfile, section_past_the_end)
{
	struct wbuf b;

	raw_start(&b);
	raw_cpu(&b);
	wput_str(&b, config_text);
	wput_u32(&b, 1);
	wput_str(&b, "vcpu0");
	wput_u32(&b, 100); /* 100 bytes said, 2 there */
	wput_u16(&b, 0);
	expect_refused(&b, -EBADMSG, "corrupt: section 'vcpu0': a bad length");
}

Test(snapfile, more_sections_than_the_file_holds)
{
	static const char *const ids[] = {"vcpu0"};
	struct wbuf b;

	raw_sections(&b, ids, 1);
	/* The count says 2: patch it (it is the u32 before the one section). */
	b.p[b.len - (4 + 5) - (4 + 1) - 4] = 2;
	expect_refused(&b, -EBADMSG, "corrupt: section 1: a bad length for its id");
}

Test(snapfile, too_many_sections)
{
	struct wbuf b;

	raw_start(&b);
	raw_cpu(&b);
	wput_str(&b, config_text);
	wput_u32(&b, SNAP_MAX_SECTIONS + 1);
	expect_refused(&b, -EBADMSG, "corrupt: 1025 sections, at most 1024");
}

Test(snapfile, bytes_after_the_last_section)
{
	static const char *const ids[] = {"vcpu0"};
	struct wbuf b;

	raw_sections(&b, ids, 1);
	wput_u8(&b, 7);
	expect_refused(&b, -EBADMSG, "corrupt: 1 bytes after the last section");
}

Test(snapfile, cpu_words)
{
	struct wbuf b;

	raw_start(&b);
	wput_str(&b, FLINT_VERSION);
	wput_str(&b, "GenuineIntel");
	wput_u32(&b, SNAP_MAX_CPU_WORDS + 1);
	expect_refused(&b, -EBADMSG, "corrupt: 129 CPU words, at most 128");

	raw_start(&b);
	wput_str(&b, FLINT_VERSION);
	wput_str(&b, "GenuineIntel");
	wput_u32(&b, 2);
	for (int i = 0; i < 2; i++) {
		wput_u32(&b, 7), wput_u32(&b, 0), wput_u32(&b, 1), wput_u32(&b, i);
	}
	wput_str(&b, config_text);
	wput_u32(&b, 0);
	expect_refused(&b, -EBADMSG, "corrupt: CPU word leaf 0x7 subleaf 0x0 register 1 twice");

	raw_start(&b);
	wput_str(&b, FLINT_VERSION);
	wput_str(&b, "GenuineIntelX"); /* 13 characters */
	expect_refused(&b, -EBADMSG, "corrupt: the CPU vendor");
}

Test(snapfile, malformed_vm_config)
{
	static const struct {
		const char *json, *msg;
	} cases[] = {
	    {"{", "vm_config: "},
	    {"", "vm_config: "},
	    {"[]", "vm_config: "},
	    {"{\"drives\": []}", "vm_config: missing required field 'boot-source'"},
	    {"{\"boot-source\": {\"kernel_image_path\": \"k\"}, \"drives\": [],"
	     " \"machine-config\": {\"vcpu_count\": 0, \"mem_size_mib\": 128}}",
	     "vm_config: "},
	    /* A config file's unknown member is passed over; a snapshot's
	     * (a newer flint's section) is not dropped unsaid. */
	    {"{\"boot-source\": {\"kernel_image_path\": \"k\"}, \"drives\": [], \"gpu\": {}}",
	     "vm_config: unknown top-level field 'gpu'"},
	};
	struct wbuf b;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		raw_start(&b);
		raw_cpu(&b);
		wput_str(&b, cases[i].json);
		wput_u32(&b, 0);
		seal(&b);
		cr_assert_eq(read_err(b.p, b.len), -EINVAL, "case %zu: %s", i, err);
		cr_assert_eq(strncmp(err, cases[i].msg, strlen(cases[i].msg)), 0, "case %zu: %s", i,
			     err);
		wbuf_free(&b);
	}
}

/* ---- the writer's refusals ------------------------------------------------- */

Test(snapfile, writer_refusals)
{
	struct snap_writer w;
	struct snap_cpu cpu;
	struct vm_config c;
	char long_id[SNAP_MAX_ID + 2];

	test_writer(&w);
	cr_assert_eq(snap_writer_add(&w, "", "x", 1), -EINVAL);
	cr_assert_eq(snap_writer_add(&w, "a b", "x", 1), -EINVAL);
	cr_assert_eq(snap_writer_add(&w, "a\tb", "x", 1), -EINVAL);
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	cr_assert_eq(snap_writer_add(&w, long_id, "x", 1), -EINVAL);
	long_id[SNAP_MAX_ID] = '\0';
	cr_assert_eq(snap_writer_add(&w, long_id, "x", 1), 0);
	cr_assert_eq(snap_writer_add(&w, "vcpu0", "x", 1), -EEXIST);
	snap_writer_free(&w);

	test_config(&c);
	test_cpu(&cpu);
	memcpy(cpu.vendor, "GenuineIntelX", 13); /* no NUL */
	cr_assert_eq(snap_writer_init(&w, &cpu, &c, err, sizeof(err)), -EINVAL);
	ERR_HAS("CPU vendor");
	test_cpu(&cpu);
	cpu.w[2] = cpu.w[0];
	cr_assert_eq(snap_writer_init(&w, &cpu, &c, err, sizeof(err)), -EINVAL);
	ERR_HAS("twice");
	test_cpu(&cpu);
	cpu.n = SNAP_MAX_CPU_WORDS + 1;
	cr_assert_eq(snap_writer_init(&w, &cpu, &c, err, sizeof(err)), -EINVAL);
	vm_config_free(&c);

	/* A config with no kernel would not restore: refused at save. */
	vm_config_init(&c);
	test_cpu(&cpu);
	cr_assert_eq(snap_writer_init(&w, &cpu, &c, err, sizeof(err)), -EINVAL);
	ERR_HAS("vm_config would not restore: ");
	snap_writer_free(&w);
}

/* ---- files ------------------------------------------------------------------- */

static char dir[] = "/tmp/test_snapfile.XXXXXX";

static void mkdir_tmp(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(snapfile, file_round_trip, .init = mkdir_tmp, .fini = rm_tmp)
{
	struct snap_writer w;
	struct snap s;
	struct stat st;
	char path[256], tmp[300];

	snprintf(path, sizeof(path), "%s/state", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	test_writer(&w);
	/* Over an old file, and over a stale .tmp left by a crash. */
	cr_assert_eq(snap_write_file(&w, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(close(open(tmp, O_WRONLY | O_CREAT, 0644)), 0);
	cr_assert_eq(snap_write_file(&w, path, err, sizeof(err)), 0, "%s", err);
	snap_writer_free(&w);
	cr_assert_eq(access(tmp, F_OK), -1, "the .tmp file is left");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);

	cr_assert_eq(snap_read_file(path, &s, err, sizeof(err)), 0, "%s", err);
	check_test_snap(&s);
	snap_free(&s);
}

Test(snapfile, write_file_errors, .init = mkdir_tmp, .fini = rm_tmp)
{
	struct snap_writer w;
	char path[256], tmp[300];
	struct stat st;
	int fd;

	test_writer(&w);
	/* A directory that is not there: the error names the .tmp path. */
	snprintf(path, sizeof(path), "%s/no/state", dir);
	cr_assert_eq(snap_write_file(&w, path, err, sizeof(err)), -ENOENT);
	snprintf(tmp, sizeof(tmp), "snapshot: creating %s.tmp: ", path);
	cr_assert_eq(strncmp(err, tmp, strlen(tmp)), 0, "%s", err);

	/* The rename fails (path is a directory that is not empty): the .tmp
	 * file goes, path is as it was. */
	snprintf(path, sizeof(path), "%s/state", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(tmp, sizeof(tmp), "%s/state/x", dir);
	cr_assert_eq(close(open(tmp, O_WRONLY | O_CREAT, 0644)), 0);
	cr_assert_lt(snap_write_file(&w, path, err, sizeof(err)), 0);
	ERR_HAS("renaming ");
	ERR_HAS(path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	cr_assert_eq(access(tmp, F_OK), -1, "the .tmp file is left");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));

	/* A symlink at the .tmp name is replaced, not written through. */
	snprintf(path, sizeof(path), "%s/state2", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	cr_assert_eq(symlink("/tmp/test_snapfile_target_must_not_exist", tmp), 0);
	cr_assert_eq(snap_write_file(&w, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(access("/tmp/test_snapfile_target_must_not_exist", F_OK), -1);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600);

	/* snap_write_fd writes the encoded bytes. */
	snprintf(path, sizeof(path), "%s/fd", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(snap_write_fd(&w, fd), 0);
	close(fd);
	struct snap s;
	cr_assert_eq(snap_read_file(path, &s, err, sizeof(err)), 0, "%s", err);
	check_test_snap(&s);
	snap_free(&s);
	snap_writer_free(&w);
}

Test(snapfile, read_file_errors, .init = mkdir_tmp, .fini = rm_tmp)
{
	struct snap s;
	char path[256], want[300];
	struct wbuf b;
	int fd;

	snprintf(path, sizeof(path), "%s/missing", dir);
	cr_assert_eq(snap_read_file(path, &s, err, sizeof(err)), -ENOENT);
	ERR_HAS(path);
	cr_assert_eq(snap_read_file(dir, &s, err, sizeof(err)), -EINVAL);
	ERR_HAS("not a regular file");
	/* A FIFO nobody writes to held open() for ever. */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_eq(snap_read_file(path, &s, err, sizeof(err)), -EINVAL);
	ERR_HAS("not a regular file");
	uint32_t version;
	cr_assert_eq(snap_describe_file(path, &version, err, sizeof(err)), -EINVAL);
	ERR_HAS("not a regular file");

	/* Over the cap (sparse). */
	snprintf(path, sizeof(path), "%s/big", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)SNAP_MAX_FILE + 1), 0);
	close(fd);
	cr_assert_eq(snap_read_file(path, &s, err, sizeof(err)), -EFBIG);
	ERR_HAS(path);

	/* A truncated file: the refusal is snap_read's, after the path. */
	test_file(&b);
	snprintf(path, sizeof(path), "%s/short", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, b.p, b.len - 1), (ssize_t)(b.len - 1));
	close(fd);
	cr_assert_eq(snap_read_file(path, &s, err, sizeof(err)), -EBADMSG);
	snprintf(want, sizeof(want), "snapshot %s: truncated at byte %zu of %zu", path, b.len - 1,
		 b.len);
	cr_assert_str_eq(err, want);
	cr_assert_null(s.buf);
	snap_free(&s);
	wbuf_free(&b);

	/* An empty file. */
	snprintf(path, sizeof(path), "%s/empty", dir);
	cr_assert_eq(close(open(path, O_WRONLY | O_CREAT, 0644)), 0);
	cr_assert_eq(snap_read_file(path, &s, err, sizeof(err)), -EBADMSG);
	ERR_HAS("truncated at byte 0");
}

/* --describe-snapshot: the format version from the first bytes, also of a
 * version this flint does not read. */
Test(snapfile, describe_file, .init = mkdir_tmp, .fini = rm_tmp)
{
	char path[256], want[400];
	uint32_t v = 0, two = htole32(2);
	struct wbuf b;

	test_file(&b);
	snprintf(path, sizeof(path), "%s/state", dir);
	write_file(path, b.p, b.len);
	cr_assert_eq(snap_describe_file(path, &v, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(v, SNAP_FORMAT_VERSION);

	memcpy(b.p + SNAP_MAGIC_LEN, &two, sizeof(two));
	write_file(path, b.p, b.len);
	cr_assert_eq(snap_describe_file(path, &v, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(v, 2);

	write_file(path, b.p, SNAP_MAGIC_LEN + 3);
	cr_assert_eq(snap_describe_file(path, &v, err, sizeof(err)), -EBADMSG);
	snprintf(want, sizeof(want), "snapshot %s: truncated at byte %u (in the %u-byte header)",
		 path, SNAP_MAGIC_LEN + 3, SNAP_HEADER_LEN);
	cr_assert_str_eq(err, want);

	b.p[0] ^= 1;
	write_file(path, b.p, b.len);
	cr_assert_eq(snap_describe_file(path, &v, err, sizeof(err)), -EBADMSG);
	ERR_HAS("not a flint snapshot");
	write_file(path, "", 0);
	cr_assert_eq(snap_describe_file(path, &v, err, sizeof(err)), -EBADMSG);
	ERR_HAS("not a flint snapshot");
	wbuf_free(&b);

	snprintf(path, sizeof(path), "%s/missing", dir);
	cr_assert_eq(snap_describe_file(path, &v, err, sizeof(err)), -ENOENT);
	ERR_HAS(path);
}

/* ---- CPU compatibility --------------------------------------------------------- */

Test(snapfile, cpu_compatible)
{
	struct snap_cpu saved, host;

	test_cpu(&saved);
	test_cpu(&host);
	cr_assert_eq(snap_cpu_compatible(&saved, &host, err, sizeof(err)), 0);

	/* More on the host: more bits in a word, and a word the guest was not
	 * given; the host's words in another order. */
	host.w[0].value |= 0x00010000;
	host.w[3] = (struct snap_cpu_word){.leaf = 0x80000001, .reg = 2, .value = 0x121};
	host.n = 4;
	struct snap_cpu_word t = host.w[0];
	host.w[0] = host.w[2], host.w[2] = t;
	cr_assert_eq(snap_cpu_compatible(&saved, &host, err, sizeof(err)), 0, "%s", err);

	/* Another vendor. */
	strcpy(host.vendor, "AuthenticAMD");
	cr_assert_eq(snap_cpu_compatible(&saved, &host, err, sizeof(err)), -EINVAL);
	ERR_HAS("the snapshot's CPU is 'GenuineIntel', this host's is 'AuthenticAMD'");

	/* A bit the guest was given that the host lacks. */
	test_cpu(&host);
	host.w[2].value &= ~0x8u;
	cr_assert_eq(snap_cpu_compatible(&saved, &host, err, sizeof(err)), -EINVAL);
	ERR_HAS("lacks features");
	ERR_HAS("leaf 0x7 subleaf 0x0 register 1 bits 0x00000008");

	/* A word the host does not list counts as no features. */
	test_cpu(&host);
	host.n = 2;
	cr_assert_eq(snap_cpu_compatible(&saved, &host, err, sizeof(err)), -EINVAL);
	ERR_HAS("leaf 0x7 subleaf 0x0 register 1 bits 0x000001ab");
	/* ...unless the guest had none of its bits. */
	saved.w[2].value = 0;
	cr_assert_eq(snap_cpu_compatible(&saved, &host, err, sizeof(err)), 0);

	/* Same leaf and register, another subleaf: not the same word. */
	test_cpu(&saved);
	test_cpu(&host);
	host.w[2].subleaf = 1;
	cr_assert_eq(snap_cpu_compatible(&saved, &host, err, sizeof(err)), -EINVAL);
}

/* What snap_read gives back is what the CPU check takes. */
Test(snapfile, cpu_from_file_checks_against_host)
{
	struct wbuf b;
	struct snap s;
	struct snap_cpu host;

	test_file(&b);
	cr_assert_eq(snap_read(b.p, b.len, &s, err, sizeof(err)), 0, "%s", err);
	test_cpu(&host);
	cr_assert_eq(snap_cpu_compatible(&s.cpu, &host, err, sizeof(err)), 0);
	host.w[1].value = 0;
	cr_assert_eq(snap_cpu_compatible(&s.cpu, &host, err, sizeof(err)), -EINVAL);
	snap_free(&s);
	wbuf_free(&b);
}
