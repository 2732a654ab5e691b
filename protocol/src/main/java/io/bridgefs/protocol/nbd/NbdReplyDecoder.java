package io.bridgefs.protocol.nbd;

import io.netty.buffer.ByteBuf;

/**
 * Client side: splits the server's reply stream. Simple replies carry no length, so the caller says how
 * many data bytes follow a successful simple reply to a read ({@link #decode(ByteBuf, java.util.function.LongToIntFunction)}).
 */
public final class NbdReplyDecoder {
    private NbdReplyDecoder() {}

    /** A simple reply, or one chunk of a structured reply; {@code payload} is a retained slice (release it). */
    public record Reply(boolean structured, int flags, int type, int error, long cookie, ByteBuf payload) {
        public boolean done() { return !structured || (flags & NbdConstants.NBD_REPLY_FLAG_DONE) != 0; }
    }

    /**
     * Decodes one reply or chunk, or returns null until enough bytes are buffered.
     * @param readLength for a simple reply, the number of data bytes that follow it given its cookie
     *                   (0 for non-reads); only consulted when the error field is 0
     */
    public static Reply decode(ByteBuf in, java.util.function.LongToIntFunction readLength) {
        if (in.readableBytes() < 4) return null;
        int s = in.readerIndex();
        int magic = in.getInt(s);
        if (magic == NbdConstants.NBD_SIMPLE_REPLY_MAGIC) {
            if (in.readableBytes() < NbdConstants.SIMPLE_REPLY_HEADER_SIZE) return null;
            int error = in.getInt(s + 4);
            long cookie = in.getLong(s + 8);
            int data = error == 0 ? readLength.applyAsInt(cookie) : 0;
            if (in.readableBytes() < NbdConstants.SIMPLE_REPLY_HEADER_SIZE + data) return null;
            in.skipBytes(NbdConstants.SIMPLE_REPLY_HEADER_SIZE);
            return new Reply(false, 0, 0, error, cookie, in.readRetainedSlice(data));
        }
        if (magic == NbdConstants.NBD_STRUCTURED_REPLY_MAGIC) {
            if (in.readableBytes() < NbdConstants.STRUCTURED_REPLY_HEADER_SIZE) return null;
            int flags = in.getUnsignedShort(s + 4);
            int type = in.getUnsignedShort(s + 6);
            long cookie = in.getLong(s + 8);
            long length = in.getUnsignedInt(s + 16);
            if (in.readableBytes() < NbdConstants.STRUCTURED_REPLY_HEADER_SIZE + length) return null;
            in.skipBytes(NbdConstants.STRUCTURED_REPLY_HEADER_SIZE);
            ByteBuf payload = in.readRetainedSlice((int) length);
            int error = (type & 0x8000) != 0 && length >= 4 ? payload.getInt(payload.readerIndex()) : 0;
            return new Reply(true, flags, type, error, cookie, payload);
        }
        throw new IllegalArgumentException(String.format("bad reply magic 0x%08x", magic));
    }
}
