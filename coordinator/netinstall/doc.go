// Package netinstall is the coordinators' install API: an HTTPS server on
// each coordinator's API port (7951 by default) that installs new nodes
// with one line,
//
//	curl -fsSL --cacert ca.pem https://MASTER:7951/install.sh | sh -s -- --token-file TOKEN
//
// GET /install.sh returns deploy/netinstall's POSIX sh script with the
// cluster CA, the coordinators' install API addresses and their gossip
// addresses (from gossip, at request time) filled in. GET
// /dl/drove-<os>-<arch> streams the drove binary: the coordinator's own
// executable for its own platform, others from a directory of binaries
// (<data-dir>/dl). Downloads need proof of the cluster token
// (clusterauth.InstallProof as a Bearer credential); a missing or wrong
// proof gets 401 and RefusedMessage, which the script prints.
//
// The server's certificate is issued by the cluster CA every coordinator
// derives from the token (clusterauth.ServingCert) for the coordinator's
// addresses, and for any other DNS name a client asks for by SNI; the
// script pins that CA for its downloads.
package netinstall
