/* flint's version: what --version prints, GET / and GET /version answer
 * and the jailer reports. A -DFLINT_VERSION from the build overrides it. */
#ifndef FLINT_VERSION_H
#define FLINT_VERSION_H

#ifndef FLINT_VERSION
#define FLINT_VERSION "0.1.0"
#endif

#endif
