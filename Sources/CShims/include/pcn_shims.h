#ifndef PCN_SHIMS_H
#define PCN_SHIMS_H
// System calls whose C API is macros or variadic (CMSG_*, sockaddr_un sizing): a few lines of C
// are clearer than re-deriving the layouts in Swift.
#include <stddef.h>
#include <sys/types.h>

// Most fds one bus frame may carry.
#define PCN_MAX_FRAME_FDS 16

// sendmsg() one datagram plus up to PCN_MAX_FRAME_FDS fds (SCM_RIGHTS). Returns bytes sent or -1 (errno).
ssize_t pcn_send_frame(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags);

// recvmsg() one datagram. Fills fds[0..*nfds) (received fds get O_CLOEXEC). *truncated is set when the
// datagram or its control data did not fit (the fds that did arrive are still returned so the caller
// can close them). Returns bytes received (0 = orderly shutdown) or -1 (errno).
ssize_t pcn_recv_frame(int sock, void *buf, size_t cap, int *fds, int *nfds, int *truncated, int flags);

// socket(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC) + bind + listen on path. -1 with errno on failure;
// -2 when the path is too long for sockaddr_un.
int pcn_seqpacket_listen(const char *path, int backlog);

// socket + connect to path. Same error convention as pcn_seqpacket_listen.
int pcn_seqpacket_connect(const char *path);

// A bound AF_UNIX SOCK_DGRAM socket (a NOTIFY_SOCKET listener, as systemd has). Same errors as above.
/* A stream socket connected to the Unix socket at path; -1 (errno set) or -2 (path too long). */
int pcn_stream_connect(const char *path);
int pcn_dgram_bind(const char *path);

// A connected SOCK_SEQPACKET pair (for benchmarks and unit tests). 0 or -1.
int pcn_seqpacket_pair(int sv[2]);

// The peer of a connected Unix socket: its pid and uid (SO_PEERCRED). 0 or -1.
int pcn_peer_credentials(int sock, int *pid, unsigned *uid);

// A non-blocking, close-on-exec pipe used to wake a poll loop. 0 or -1.
int pcn_wake_pipe(int fds[2]);

// 1 if path is on a bpf filesystem, 0 if not, -1 with errno if it cannot be checked.
int pcn_is_bpffs(const char *path);

// An AF_PACKET raw socket bound to ifindex: what is written goes out of that interface. -1 with errno.
int pcn_packet_socket(int ifindex);

// A NETLINK_ROUTE socket subscribed to link changes. -1 with errno.
int pcn_link_monitor_open(void);

// Blocks for the next batch of link messages; writes the ifindex of each link deleted or changed
// into links[0..max), with deleted[i] 1 for a deletion, and returns how many, or -1 with errno.
int pcn_link_monitor_read(int fd, int *links, int *deleted, int max);

// 1 if ifindex is a veth whose twin is in another network namespace (bpf_redirect_peer can reach
// it), 0 if not (or no such link), -1 with errno if netlink cannot be asked.
int pcn_link_twin_elsewhere(int ifindex);

// An anonymous in-memory file (memfd_create with MFD_CLOEXEC). -1 with errno.
int pcn_memfd(const char *name);

// Sends one entry to journald with the fields SERVICE, CUBE and LEVEL (sd_journal_send is variadic).
// 0 or -errno.
int pcn_journal_send(const char *message, int priority, const char *service, const char *cube, const char *level);

#endif
