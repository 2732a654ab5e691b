package io.bridgefs.server.net;

import io.bridgefs.protocol.GatedDecoder;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.unix.IntegerUnixChannelOption;

/**
 * Wakes the network thread once per large frame, not once per segment: while a frame of at least
 * {@link #MIN} bytes is partly read, the socket's receive low-water mark ({@code SO_RCVLOWAT}) is set
 * to the bytes it still lacks, so epoll reports the socket readable only when they have all come (the
 * kernel also reports it when its receive window is nearly closed, so a mark above what the socket can
 * hold never stalls it). A guest's 256 KiB Twrite through QEMU's user networking arrived in ~60 reads
 * of ~4 KiB, each after its own epoll wait. Those bytes are the next in the stream and the client
 * sends them without waiting for a reply, so the wait ends when they come; a client that stops halfway
 * is the stall the {@link ConnectionGuard} already cuts off. The mark goes back to 1 when no frame is
 * partly read.
 *
 * <p>The guard judges a slow sender by the bytes read from it, which the mark holds back; it calls
 * {@link #release} at each look, which lowers the mark (the kernel then wakes the reader for what it
 * holds) and keeps it down until that frame is whole, and tells the guard that this look's count of
 * bytes read is not the client's pace.
 */
public final class ReceiveLowWater extends ChannelInboundHandlerAdapter {
    public static final String NAME = "receive-low-water";
    static final ChannelOption<Integer> SO_RCVLOWAT = new IntegerUnixChannelOption("SO_RCVLOWAT", 1, 18);  // SOL_SOCKET, SO_RCVLOWAT
    /** Frames whose rest is smaller come in a few segments: not worth two system calls. */
    static final long MIN = 32 << 10;
    /** At most this (the kernel caps the mark at half of tcp_rmem's maximum anyway). */
    static final long MAX = 4 << 20;

    private final GatedDecoder decoder;
    private int mark = 1;
    private long released = -1;         // the guard lowered the mark while this many frames were whole: down until the next is

    private ReceiveLowWater(GatedDecoder decoder) {
        this.decoder = decoder;
    }

    /**
     * Adds the handler after {@code decoderName} where the socket has the option (TCP on epoll) and its
     * bytes are the frames' (not under TLS: what a frame lacks in plaintext may be more than the socket
     * will still bring, as the TLS layer may hold part of a record already read; the mark would then wait
     * for bytes the client never sends until the guard's next look). Else nothing.
     */
    public static void install(Channel ch, String decoderName, GatedDecoder decoder) {
        if (ch instanceof EpollSocketChannel && ch.pipeline().get(io.bridgefs.server.tls.TlsHandler.NAME) == null) {
            ch.pipeline().addAfter(decoderName, NAME, new ReceiveLowWater(decoder));
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        long missing = decoder.bytesAwaited();
        boolean keptDown = released == decoder.wholeFrames();
        set(ctx.channel(), missing >= MIN && !keptDown ? (int) Math.min(missing, MAX) : 1);
        ctx.fireChannelReadComplete();
    }

    /**
     * The guard looks (event loop): lowers a raised mark and keeps it down for the frame being read;
     * true if it was raised, so the bytes read since the last look may be fewer than the client sent.
     */
    public static boolean release(Channel ch) {
        ReceiveLowWater h = ch.pipeline().get(ReceiveLowWater.class);
        if (h == null || h.mark == 1) return false;
        h.released = h.decoder.wholeFrames();
        h.set(ch, 1);
        return true;
    }

    private void set(Channel ch, int want) {
        if (want == mark) return;
        try {
            ch.config().setOption(SO_RCVLOWAT, want);
            mark = want;
        } catch (RuntimeException e) {
            // the socket is closing: nothing to wake for
        }
    }
}
