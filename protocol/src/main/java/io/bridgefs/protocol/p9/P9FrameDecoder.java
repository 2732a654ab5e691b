package io.bridgefs.protocol.p9;

import io.bridgefs.protocol.FrameGate;
import io.bridgefs.protocol.GatedDecoder;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import java.util.List;

/**
 * Splits the byte stream into 9P frames and decodes them. A frame larger than the negotiated msize is
 * never buffered: its header is reported as {@link P9Message.Oversized} and the rest skipped as it
 * arrives. A frame whose size field is below the header size cannot be skipped safely and ends the
 * stream ({@link P9Message.Malformed} with tag NOTAG; the session disconnects). Never throws on input.
 * With a {@link FrameGate}, a frame larger than {@link FrameGate#MIN_GATED} is reserved before it is
 * accumulated; once decoded, a {@link P9Message.Twrite} keeps the reservation of its data (see
 * {@link #prepaid}) and the rest is given back (other decoded messages hold no buffer).
 */
public final class P9FrameDecoder extends GatedDecoder {
    private long maxSize;
    private long skipRemaining;
    private boolean broken;

    public P9FrameDecoder(long maxSize) {
        this.maxSize = maxSize;
    }

    /** The bytes of the gate a decoded message holds: a gated Twrite's data, else 0. */
    public static long prepaid(P9Message m) {
        return m instanceof P9Message.Twrite w && P9.HEADER + 16L + w.data().readableBytes() > FrameGate.MIN_GATED ? w.data().readableBytes() : 0;
    }

    /** After Tversion: frames larger than the negotiated msize are refused. */
    public void setMaxSize(long maxSize) {
        this.maxSize = maxSize;
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        if (broken) {
            in.skipBytes(in.readableBytes());
            return;
        }
        if (skipRemaining > 0) {
            int n = (int) Math.min(skipRemaining, in.readableBytes());
            in.skipBytes(n);
            skipRemaining -= n;
            if (skipRemaining > 0) return;
        }
        if (in.readableBytes() < P9.HEADER) return;
        int s = in.readerIndex();
        long size = in.getUnsignedIntLE(s);
        int type = in.getUnsignedByte(s + 4);
        int tag = in.getUnsignedShortLE(s + 5);
        if (size < P9.HEADER) {
            broken = true;
            in.skipBytes(in.readableBytes());
            out.add(new P9Message.Malformed(P9.NOTAG, type, "frame size " + size + " is smaller than its header"));
            return;
        }
        if (size > maxSize) {
            in.skipBytes(P9.HEADER);
            skipRemaining = size - P9.HEADER;
            out.add(new P9Message.Oversized(tag, type, size));
            return;
        }
        if (!admitFrame(size)) return;                // the gate has us try again
        if (!whole(in, size)) return;
        in.skipBytes(P9.HEADER);
        ByteBuf body = in.readSlice((int) size - P9.HEADER);
        P9Message m;
        try {
            m = P9Codec.decode(type, tag, body);
        } catch (P9Codec.Malformed e) {
            m = new P9Message.Malformed(tag, type, e.getMessage());
        }
        frameDecoded(prepaid(m));                     // a Twrite keeps its data's share
        out.add(m);
    }
}
