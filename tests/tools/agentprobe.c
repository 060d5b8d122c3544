/* agentprobe: a process in the guest asking flint's agent to run a command,
 * as flint does from the host, over AF_VSOCK to the agent's port on the
 * guest's own side (the vsock loopback):
 *
 *   agentprobe CID CMD [ARG...]     CID: "local" (VMADDR_CID_LOCAL, 1) or a
 *                                   number (the guest's own CID, say)
 *
 * Sends a REQUEST without AGENT_REQ_USER (the agent's own user), prints
 * what the command wrote to its stdout and the agent's answer on stderr,
 * and exits with the command's status; 3 when the agent closed the
 * connection without answering, 4 when the connection could not be made,
 * 5 for an answer that is not the protocol's. Rig scenario 8a runs it as
 * a --user job: the agent must serve only the host. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

/* The agent's own frame code, built in: each test tool is one file. */
#include "agent/proto.c"

int main(int argc, char **argv)
{
	static uint8_t frame[AGENT_REQUEST_MAX + AGENT_HDR_SIZE], payload[AGENT_DATA_MAX];
	char err[256];

	if (argc < 3) {
		fprintf(stderr, "usage: agentprobe local|CID CMD [ARG...]\n");
		return 2;
	}
	unsigned cid =
	    !strcmp(argv[1], "local") ? VMADDR_CID_LOCAL : (unsigned)strtoul(argv[1], NULL, 0);
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = AGENT_VSOCK_PORT};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "agentprobe: connecting to CID %u port %u: %s\n", cid,
			AGENT_VSOCK_PORT, strerror(errno));
		return 4;
	}
	struct agent_request req = {
	    .argc = (uint32_t)(argc - 2), .argv = argv + 2, .envp = NULL, .cwd = "/"};
	long n = agent_request_encode(&req, frame, sizeof(frame), err, sizeof(err));

	if (n < 0) {
		fprintf(stderr, "agentprobe: %s\n", err);
		return 2;
	}
	if (send(fd, frame, (size_t)n, MSG_NOSIGNAL) != n) {
		/* A peer that closed at once may refuse what we send. */
		fprintf(stderr, "agentprobe: the agent closed the connection (%s)\n",
			strerror(errno));
		return 3;
	}
	struct agent_reader r;

	agent_reader_init(&r, payload, sizeof(payload));
	for (;;) {
		int got = agent_read_frame(&r, fd);
		struct agent_exit e;

		if (got == 0 || got == -ECONNRESET) {
			fprintf(stderr, "agentprobe: the agent closed the connection unanswered\n");
			return 3;
		}
		if (got < 0) {
			fprintf(stderr, "agentprobe: reading: %s\n", strerror(-got));
			return 5;
		}
		switch (r.f.type) {
		case AGENT_STDOUT:
			fwrite(r.buf, 1, r.f.len, stdout);
			fflush(stdout);
			break;
		case AGENT_STDERR:
			break;
		case AGENT_ERROR:
			agent_msg_copy(err, sizeof(err), r.buf, r.f.len);
			fprintf(stderr, "agentprobe: the agent refused: %s\n", err);
			return 3;
		case AGENT_EXIT:
			if (agent_exit_decode(r.buf, r.f.len, &e) < 0)
				return 5;
			fprintf(stderr, "agentprobe: the command ended: kind %u value %d\n", e.kind,
				e.value);
			return e.kind == AGENT_EXITED ? e.value : 5;
		default:
			return 5;
		}
	}
}
