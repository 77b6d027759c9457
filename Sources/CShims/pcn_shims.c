#define _GNU_SOURCE
#include "pcn_shims.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <net/ethernet.h>
#include <arpa/inet.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

ssize_t pcn_send_frame(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags) {
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    union {
        char raw[CMSG_SPACE(sizeof(int) * PCN_MAX_FRAME_FDS)];
        struct cmsghdr align;
    } control;
    if (nfds < 0 || nfds > PCN_MAX_FRAME_FDS) {
        errno = EINVAL;
        return -1;
    }
    if (nfds > 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.raw;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    return sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
}

ssize_t pcn_recv_frame(int sock, void *buf, size_t cap, int *fds, int *nfds, int *truncated, int flags) {
    struct iovec iov = { .iov_base = buf, .iov_len = cap };
    union {
        char raw[CMSG_SPACE(sizeof(int) * PCN_MAX_FRAME_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control.raw, .msg_controllen = sizeof(control.raw) };
    *nfds = 0;
    *truncated = 0;
    ssize_t n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
            continue;
        int count = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
            if (*nfds < PCN_MAX_FRAME_FDS)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        *truncated = 1;
    return n;
}

static int fill_address(struct sockaddr_un *addr, const char *path) {
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path))
        return -1;
    strcpy(addr->sun_path, path);
    return 0;
}

static int close_keeping_errno(int fd) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* An AF_UNIX socket of `type`, bound to path (or connected to it). */
static int unix_socket_at(int type, const char *path, int connect_to_path) {
    struct sockaddr_un addr;
    if (fill_address(&addr, path) < 0)
        return -2;
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = connect_to_path ? connect(fd, (struct sockaddr *)&addr, sizeof(addr))
                             : bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    return rc < 0 ? close_keeping_errno(fd) : fd;
}

int pcn_seqpacket_listen(const char *path, int backlog) {
    int fd = unix_socket_at(SOCK_SEQPACKET, path, 0);
    if (fd >= 0 && listen(fd, backlog) < 0)
        return close_keeping_errno(fd);
    return fd;
}

int pcn_seqpacket_connect(const char *path) {
    return unix_socket_at(SOCK_SEQPACKET, path, 1);
}

int pcn_stream_connect(const char *path) {
    return unix_socket_at(SOCK_STREAM, path, 1);
}

int pcn_dgram_bind(const char *path) {
    return unix_socket_at(SOCK_DGRAM, path, 0);
}

int pcn_seqpacket_pair(int sv[2]) {
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

int pcn_peer_credentials(int sock, int *pid, unsigned *uid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    return 0;
}

int pcn_wake_pipe(int fds[2]) {
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

int pcn_is_bpffs(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) < 0)
        return -1;
    return fs.f_type == 0xcafe4a11 ? 1 : 0;
}

/* socket(domain, type|SOCK_CLOEXEC, protocol) bound to addr. The fd, or -1 with errno. */
static int bound_socket(int domain, int type, int protocol, const struct sockaddr *addr, socklen_t len) {
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return -1;
    return bind(fd, addr, len) < 0 ? close_keeping_errno(fd) : fd;
}

int pcn_packet_socket(int ifindex) {
    struct sockaddr_ll addr;
    memset(&addr, 0, sizeof(addr));
    addr.sll_family = AF_PACKET;
    addr.sll_ifindex = ifindex;
    return bound_socket(AF_PACKET, SOCK_RAW, 0, (struct sockaddr *)&addr, sizeof(addr));
}

int pcn_link_monitor_open(void) {
    struct sockaddr_nl addr;
    memset(&addr, 0, sizeof(addr));
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = RTMGRP_LINK;
    return bound_socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, (struct sockaddr *)&addr, sizeof(addr));
}

int pcn_link_monitor_read(int fd, int *links, int *deleted, int max) {
    char buffer[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0)
        return -1;
    int count = 0;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buffer; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
        if ((h->nlmsg_type != RTM_DELLINK && h->nlmsg_type != RTM_NEWLINK) || count >= max)
            continue;
        struct ifinfomsg *info = NLMSG_DATA(h);
        links[count] = info->ifi_index;
        deleted[count++] = h->nlmsg_type == RTM_DELLINK;
    }
    return count;
}

int pcn_link_twin_elsewhere(int ifindex) {
    struct sockaddr_nl local;
    memset(&local, 0, sizeof(local));
    local.nl_family = AF_NETLINK;
    int fd = bound_socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, (struct sockaddr *)&local, sizeof(local));
    if (fd < 0)
        return -1;
    struct {
        struct nlmsghdr header;
        struct ifinfomsg info;
    } request;
    memset(&request, 0, sizeof(request));
    request.header.nlmsg_len = sizeof(request);
    request.header.nlmsg_type = RTM_GETLINK;
    request.header.nlmsg_flags = NLM_F_REQUEST;
    request.info.ifi_family = AF_UNSPEC;
    request.info.ifi_index = ifindex;
    if (send(fd, &request, sizeof(request), 0) < 0)
        return close_keeping_errno(fd);
    char buffer[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    close(fd);
    if (n < 0)
        return -1;
    struct nlmsghdr *h = (struct nlmsghdr *)buffer;
    if (!NLMSG_OK(h, (size_t)n) || h->nlmsg_type != RTM_NEWLINK)
        return 0;   /* NLMSG_ERROR: no such link */
    struct ifinfomsg *info = NLMSG_DATA(h);
    int is_veth = 0, elsewhere = 0;
    int left = IFLA_PAYLOAD(h);
    for (struct rtattr *a = IFLA_RTA(info); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
        if (a->rta_type == IFLA_LINK_NETNSID)
            elsewhere = 1;
        if (a->rta_type != IFLA_LINKINFO)
            continue;
        int inner = RTA_PAYLOAD(a);
        for (struct rtattr *b = RTA_DATA(a); RTA_OK(b, inner); b = RTA_NEXT(b, inner))
            if (b->rta_type == IFLA_INFO_KIND && RTA_PAYLOAD(b) == sizeof("veth") && memcmp(RTA_DATA(b), "veth", sizeof("veth")) == 0)
                is_veth = 1;
    }
    return is_veth && elsewhere;
}

#include <systemd/sd-journal.h>

int pcn_journal_send(const char *message, int priority, const char *service, const char *cube, const char *level) {
    return sd_journal_send("MESSAGE=%s", message, "PRIORITY=%i", priority, "SERVICE=%s", service,
                           "CUBE=%s", cube, "LEVEL=%s", level, "SYSLOG_IDENTIFIER=pcn", NULL);
}

#include <sys/mman.h>

int pcn_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}
