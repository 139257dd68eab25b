package dataplane

import (
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nftSocketBuffer is the send and receive buffer of berth's nftables
// sockets. A transaction goes to the kernel in one sendmsg, which fails
// with EMSGSIZE beyond the socket's send buffer (wmem_default, 208 KiB
// here), and its acknowledgements overflow a default receive buffer
// (ENOBUFS): at about 4,000 map elements, `-p 21000-24999:21000-24999
// -p ...:.../udp` could not be published, nor, worse, unpublished (the
// container stayed in "Removal In Progress"). The buffers are only
// charged for what is queued.
const nftSocketBuffer = 64 << 20

// bigSocketBuffers raises the socket's buffers past wmem_max/rmem_max
// (berth runs as root: SO_SNDBUFFORCE, SO_RCVBUFFORCE), as nft does for
// large batches.
func bigSocketBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr, rerr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, nftSocketBuffer)
		rerr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, nftSocketBuffer)
	}); err != nil {
		return err
	}
	// Without CAP_NET_ADMIN: as large as wmem_max and rmem_max allow.
	if serr != nil {
		if err := c.SetWriteBuffer(nftSocketBuffer); err != nil {
			return err
		}
	}
	if rerr != nil {
		return c.SetReadBuffer(nftSocketBuffer)
	}
	return nil
}
