# cython: language_level=3
"""The media thread's side of an RTP socket, straight onto the system calls.

``receive`` takes every datagram waiting on the socket in one ``recvmmsg``
call, each with the time the kernel received it (SO_TIMESTAMPNS) on the
monotonic clock; ``send_rtp`` builds an RTP header in place and sends with
one ``sendto``; ``send`` sends a finished packet (SRTP, a keepalive). The
GIL is released inside each system call. Python's socket object is not used
here: it would build a tuple of ancillary data and an address per datagram.
"""
from libc.errno cimport errno, EAGAIN, EINTR      # EWOULDBLOCK is EAGAIN on Linux
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy, memset
from posix.time cimport timespec, clock_gettime, CLOCK_MONOTONIC, CLOCK_REALTIME
from wire cimport put_rtp_header


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    struct iovec:
        void* iov_base
        size_t iov_len
    struct msghdr:
        void* msg_name
        socklen_t msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    cmsghdr* CMSG_FIRSTHDR(msghdr* msg)
    cmsghdr* CMSG_NXTHDR(msghdr* msg, cmsghdr* cmsg)
    unsigned char* CMSG_DATA(cmsghdr* cmsg)
    int recvmmsg(int fd, mmsghdr* msgs, unsigned int vlen, int flags, timespec* timeout)
    ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* to,
                   socklen_t tolen)
    int SOL_SOCKET
    int MSG_DONTWAIT
    int MSG_TRUNC
    int AF_INET
    int AF_INET6
    int SCM_TIMESTAMPNS

cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr
    struct in6_addr:
        pass
    struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port
        in6_addr sin6_addr
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)

cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char* src, void* dst)
    const char* inet_ntop(int af, const void* src, char* dst, socklen_t size)


DEF BATCH = 16            # datagrams per system call
DEF MAX_DATAGRAM = 2048   # larger ones arrive cut, and are dropped and counted
DEF CONTROL = 64          # room for one timestamp message
RECEIVE_BATCH = BATCH     # the most one ``receive`` returns
DEF MAX_PACKET = 1500


cdef double _seconds(timespec* t) noexcept nogil:
    return t.tv_sec + t.tv_nsec * 1e-9


cdef class RtpIO:
    """The data path of the UDP socket ``fd`` (not owned: the caller closes it)."""
    cdef int fd
    cdef mmsghdr _msgs[BATCH]
    cdef iovec _iov[BATCH]
    cdef sockaddr_storage _from[BATCH]
    cdef unsigned char _data[BATCH][MAX_DATAGRAM]
    cdef unsigned char _control[BATCH][CONTROL]
    cdef sockaddr_storage _to
    cdef socklen_t _to_len
    cdef readonly object target          # (host, port) sent to, or None
    cdef readonly long errors            # failed system calls other than a full or empty socket
    cdef readonly int last_error         # errno of the last of those
    cdef readonly long oversized         # datagrams too large for RTP here, dropped

    def __cinit__(self, int fd):
        cdef int i
        self.fd = fd
        self._to_len = 0
        self.target = None
        memset(self._msgs, 0, sizeof(self._msgs))
        for i in range(BATCH):
            self._iov[i].iov_base = self._data[i]
            self._iov[i].iov_len = MAX_DATAGRAM

    def aim(self, str host, int port):
        """Send to ``host`` (a numeric IPv4 or IPv6 address) and ``port`` from now
        on; ValueError for anything else."""
        cdef bytes name = host.encode()
        cdef sockaddr_in* v4 = <sockaddr_in*>&self._to
        cdef sockaddr_in6* v6 = <sockaddr_in6*>&self._to
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} outside 0..65535")
        memset(&self._to, 0, sizeof(self._to))
        if inet_pton(AF_INET, name, &v4.sin_addr) == 1:
            v4.sin_family = AF_INET
            v4.sin_port = htons(port)
            self._to_len = sizeof(sockaddr_in)
        elif inet_pton(AF_INET6, name, &v6.sin6_addr) == 1:
            v6.sin6_family = AF_INET6
            v6.sin6_port = htons(port)
            self._to_len = sizeof(sockaddr_in6)
        else:
            self._to_len = 0
            self.target = None
            raise ValueError(f"{host!r} is not a numeric IP address")
        self.target = (host, port)

    cdef object _source(self, int i):
        cdef char text[64]
        cdef sockaddr_in* v4 = <sockaddr_in*>&self._from[i]
        cdef sockaddr_in6* v6 = <sockaddr_in6*>&self._from[i]
        if v4.sin_family == AF_INET:
            inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text))
            return (text.decode(), ntohs(v4.sin_port))
        if v6.sin6_family == AF_INET6:
            inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text))
            return (text.decode(), ntohs(v6.sin6_port))
        return ("", 0)

    def receive(self):
        """What is waiting on the socket, oldest first, up to 16 datagrams: a list of
        ``(data, (host, port), arrival)``, arrival on the monotonic clock (the
        kernel's receive time where it gives one, else now). Empty when nothing is
        waiting; a failing socket counts in ``errors``."""
        cdef int i, got, err
        cdef timespec mono, real
        cdef double offset, arrival, now
        cdef cmsghdr* c
        cdef timespec stamp
        cdef list out = []
        for i in range(BATCH):
            self._msgs[i].msg_hdr.msg_name = &self._from[i]
            self._msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage)
            self._msgs[i].msg_hdr.msg_iov = &self._iov[i]
            self._msgs[i].msg_hdr.msg_iovlen = 1
            self._msgs[i].msg_hdr.msg_control = self._control[i]
            self._msgs[i].msg_hdr.msg_controllen = CONTROL
            self._msgs[i].msg_hdr.msg_flags = 0
        with nogil:
            got = recvmmsg(self.fd, self._msgs, BATCH, MSG_DONTWAIT, NULL)
            err = errno
            clock_gettime(CLOCK_MONOTONIC, &mono)
            clock_gettime(CLOCK_REALTIME, &real)
        if got < 0:
            if err != EAGAIN and err != EINTR:
                self.errors += 1          # an ICMP error from an earlier send, and so on
                self.last_error = err
            return out
        now = _seconds(&mono)
        offset = _seconds(&real) - now
        for i in range(got):
            if self._msgs[i].msg_hdr.msg_flags & MSG_TRUNC:
                self.oversized += 1
                continue
            arrival = now
            c = CMSG_FIRSTHDR(&self._msgs[i].msg_hdr)
            while c != NULL:
                if c.cmsg_level == SOL_SOCKET and c.cmsg_type == SCM_TIMESTAMPNS:
                    memcpy(&stamp, CMSG_DATA(c), sizeof(timespec))
                    arrival = _seconds(&stamp) - offset
                    if arrival > now:
                        arrival = now
                    break
                c = CMSG_NXTHDR(&self._msgs[i].msg_hdr, c)
            out.append(((<char*>self._data[i])[:self._msgs[i].msg_len], self._source(i),
                        arrival))
        return out

    cdef int _sendto(self, const unsigned char* data, size_t n) noexcept:
        # The target is copied while the GIL is held: ``aim`` may change it meanwhile.
        cdef sockaddr_storage to = self._to
        cdef socklen_t to_len = self._to_len
        cdef ssize_t sent
        cdef int err = 0
        if to_len == 0:
            return 0
        with nogil:
            sent = sendto(self.fd, data, n, 0, <sockaddr*>&to, to_len)
            if sent < 0:
                err = errno
        if sent < 0 and err != EAGAIN and err != EINTR:
            self.errors += 1
            self.last_error = err
            return -1
        return 0

    def send(self, const unsigned char[::1] data):
        """One finished datagram to the target (none set: nothing is sent). A full
        socket buffer loses it, as the network would; other failures count in
        ``errors`` and return False."""
        if data.shape[0] == 0:
            return self._sendto(NULL, 0) == 0
        return self._sendto(&data[0], data.shape[0]) == 0

    def send_rtp(self, int payload_type, bint marker, unsigned int seq, unsigned long long ts,
                 unsigned long long ssrc, const unsigned char[::1] payload):
        """One RTP packet (version 2, no CSRC, extension or padding) to the target."""
        cdef Py_ssize_t n = payload.shape[0]
        cdef unsigned char p[12 + MAX_PACKET]      # on the stack: any thread may send
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type {payload_type} outside 0..127")
        if n > MAX_PACKET:
            raise ValueError(f"an RTP payload of {n} bytes (at most {MAX_PACKET})")
        put_rtp_header(p, payload_type, marker, seq, ts, ssrc)
        if n:
            memcpy(p + 12, &payload[0], n)
        return self._sendto(p, 12 + n) == 0
