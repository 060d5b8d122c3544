/* server: `flint serve`, per-request function execution. One process: an
 * HTTP/1.1 server (libmicrohttpd, a thread per connection; JSON with
 * jansson) holding a registry of functions, each with its snapshot, and a
 * pool (pool.h) that decides which request runs on which VM. Every VM is a
 * flint child process of its own (worker.h), so a guest that crashes or
 * hangs costs its request and never the server, and stopping the server
 * kills and reaps every one. The endpoints: route.h; the options: `flint
 * serve --help` and README.md. */
#ifndef FLINT_SERVE_SERVER_H
#define FLINT_SERVE_SERVER_H

/* `flint serve ARGS`: argv[0] is "serve". Runs until SIGINT or SIGTERM;
 * returns the process's exit status (0, or 125 when it could not start). */
int serve_main(int argc, char **argv);

#endif
