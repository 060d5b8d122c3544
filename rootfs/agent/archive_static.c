/* Linked into the static builds that use libarchive (the guest agent, the
 * static flint) ahead of Debian's libarchive.a. Any of its tar writers
 * pulls in the table of every format writer (archive_write_set_format.o),
 * and with it the xar writer, the only part that needs libxml2, which in
 * turn needs ICU: some 30 MB of static data for a format flint never
 * writes. Defining the xar writer's entry point here keeps the linker from
 * taking libarchive's object for it; choosing xar by name then fails
 * cleanly. The shared builds link the real one. */
#include <archive.h>
#include <errno.h>

int archive_write_set_format_xar(struct archive *a)
{
	archive_set_error(a, EINVAL, "xar format not built into flint");
	return ARCHIVE_FATAL;
}
