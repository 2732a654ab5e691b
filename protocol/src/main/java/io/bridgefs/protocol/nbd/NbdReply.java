package io.bridgefs.protocol.nbd;

import io.netty.buffer.ByteBuf;
import java.nio.charset.StandardCharsets;

/**
 * Server-side reply writers: simple replies, and the chunks of structured replies. Payload bytes of
 * reads are appended by the caller after the header these methods write.
 */
public final class NbdReply {
    private NbdReply() {}

    public static void simple(ByteBuf out, long cookie, int error) {
        out.writeInt(NbdConstants.NBD_SIMPLE_REPLY_MAGIC);
        out.writeInt(error);
        out.writeLong(cookie);
    }

    public static void chunkHeader(ByteBuf out, int flags, int type, long cookie, long payloadLength) {
        out.writeInt(NbdConstants.NBD_STRUCTURED_REPLY_MAGIC);
        out.writeShort(flags);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeInt((int) payloadLength);
    }

    /** Header of an OFFSET_DATA chunk; the caller appends {@code dataLength} bytes. */
    public static void offsetDataHeader(ByteBuf out, int flags, long cookie, long offset, long dataLength) {
        chunkHeader(out, flags, NbdConstants.NBD_REPLY_TYPE_OFFSET_DATA, cookie, 8 + dataLength);
        out.writeLong(offset);
    }

    public static void offsetHole(ByteBuf out, int flags, long cookie, long offset, long holeLength) {
        chunkHeader(out, flags, NbdConstants.NBD_REPLY_TYPE_OFFSET_HOLE, cookie, 12);
        out.writeLong(offset);
        out.writeInt((int) holeLength);
    }

    public static void none(ByteBuf out, long cookie) {
        chunkHeader(out, NbdConstants.NBD_REPLY_FLAG_DONE, NbdConstants.NBD_REPLY_TYPE_NONE, cookie, 0);
    }

    public static void error(ByteBuf out, int flags, long cookie, int error, String message) {
        byte[] m = truncated(message);
        chunkHeader(out, flags, NbdConstants.NBD_REPLY_TYPE_ERROR, cookie, 6 + m.length);
        out.writeInt(error);
        out.writeShort(m.length);
        out.writeBytes(m);
    }

    public static void errorOffset(ByteBuf out, int flags, long cookie, int error, String message, long offset) {
        byte[] m = truncated(message);
        chunkHeader(out, flags, NbdConstants.NBD_REPLY_TYPE_ERROR_OFFSET, cookie, 14 + m.length);
        out.writeInt(error);
        out.writeShort(m.length);
        out.writeBytes(m);
        out.writeLong(offset);
    }

    /** A BLOCK_STATUS chunk: context id, then (length, status) descriptors taken pairwise from {@code extents}. */
    public static void blockStatus(ByteBuf out, int flags, long cookie, int contextId, long[] extents, int count) {
        chunkHeader(out, flags, NbdConstants.NBD_REPLY_TYPE_BLOCK_STATUS, cookie, 4 + 8L * count);
        out.writeInt(contextId);
        for (int i = 0; i < count; i++) {
            out.writeInt((int) extents[2 * i]);
            out.writeInt((int) extents[2 * i + 1]);
        }
    }

    private static byte[] truncated(String message) {
        byte[] m = message == null ? new byte[0] : message.getBytes(StandardCharsets.UTF_8);
        if (m.length > NbdConstants.MAX_STRING) {
            byte[] t = new byte[NbdConstants.MAX_STRING];
            System.arraycopy(m, 0, t, 0, t.length);
            return t;
        }
        return m;
    }
}
