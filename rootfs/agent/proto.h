/* The guest agent's wire format, shared by flint (runner/run.c) and the
 * agent (rootfs/agent/agent.c). To be completed with the agent. */
#ifndef FLINT_AGENT_PROTO_H
#define FLINT_AGENT_PROTO_H

/* The vsock port the agent listens on, and connects to on CID 2 when it
 * starts (so that `flint run` learns it is ready). */
#define AGENT_VSOCK_PORT 52

#endif
