package io.bridgefs.protocol.nbd;

import io.netty.buffer.ByteBuf;
import io.netty.util.ReferenceCounted;

/**
 * A transmission-phase request. Offsets and lengths are unsigned on the wire: offsets are carried in a
 * {@code long} and compared with {@link Long#compareUnsigned}; lengths (u32) are always non-negative longs.
 */
public sealed interface NbdRequest {
    int flags();
    long cookie();
    long offset();
    long length();
    int type();

    default boolean hasFlag(int flag) { return (flags() & flag) != 0; }

    record Read(int flags, long cookie, long offset, long length) implements NbdRequest {
        public int type() { return NbdConstants.NBD_CMD_READ; }
    }

    /** NBD_CMD_WRITE; owns {@code payload} (release it, or the request, when done). */
    record Write(int flags, long cookie, long offset, long length, ByteBuf payload) implements NbdRequest, ReferenceCounted {
        public int type() { return NbdConstants.NBD_CMD_WRITE; }
        @Override public int refCnt() { return payload.refCnt(); }
        @Override public Write retain() { payload.retain(); return this; }
        @Override public Write retain(int n) { payload.retain(n); return this; }
        @Override public Write touch() { payload.touch(); return this; }
        @Override public Write touch(Object hint) { payload.touch(hint); return this; }
        @Override public boolean release() { return payload.release(); }
        @Override public boolean release(int n) { return payload.release(n); }
    }

    record Disc(int flags, long cookie, long offset, long length) implements NbdRequest {
        public int type() { return NbdConstants.NBD_CMD_DISC; }
    }

    record Flush(int flags, long cookie, long offset, long length) implements NbdRequest {
        public int type() { return NbdConstants.NBD_CMD_FLUSH; }
    }

    record Trim(int flags, long cookie, long offset, long length) implements NbdRequest {
        public int type() { return NbdConstants.NBD_CMD_TRIM; }
    }

    record Cache(int flags, long cookie, long offset, long length) implements NbdRequest {
        public int type() { return NbdConstants.NBD_CMD_CACHE; }
    }

    record WriteZeroes(int flags, long cookie, long offset, long length) implements NbdRequest {
        public int type() { return NbdConstants.NBD_CMD_WRITE_ZEROES; }
    }

    record BlockStatus(int flags, long cookie, long offset, long length) implements NbdRequest {
        public int type() { return NbdConstants.NBD_CMD_BLOCK_STATUS; }
    }

    /** A command type this server does not know; answered with NBD_EINVAL. */
    record Unknown(int type, int flags, long cookie, long offset, long length) implements NbdRequest {}

    /** A write whose payload was longer than the maximum: the payload was skipped unread. */
    record OversizedWrite(int flags, long cookie, long offset, long length) implements NbdRequest {
        public int type() { return NbdConstants.NBD_CMD_WRITE; }
    }

    /** The request magic was wrong; the stream cannot be resynchronised and the server disconnects. */
    record BadMagic(int magic) implements NbdRequest {
        public int flags() { return 0; }
        public long cookie() { return 0; }
        public long offset() { return 0; }
        public long length() { return 0; }
        public int type() { return -1; }
    }

    static NbdRequest of(int type, int flags, long cookie, long offset, long length) {
        return switch (type) {
            case NbdConstants.NBD_CMD_READ -> new Read(flags, cookie, offset, length);
            case NbdConstants.NBD_CMD_DISC -> new Disc(flags, cookie, offset, length);
            case NbdConstants.NBD_CMD_FLUSH -> new Flush(flags, cookie, offset, length);
            case NbdConstants.NBD_CMD_TRIM -> new Trim(flags, cookie, offset, length);
            case NbdConstants.NBD_CMD_CACHE -> new Cache(flags, cookie, offset, length);
            case NbdConstants.NBD_CMD_WRITE_ZEROES -> new WriteZeroes(flags, cookie, offset, length);
            case NbdConstants.NBD_CMD_BLOCK_STATUS -> new BlockStatus(flags, cookie, offset, length);
            default -> new Unknown(type, flags, cookie, offset, length);
        };
    }

    /** Client side: writes the 28-byte header and, for a write, the payload (not released). */
    static void encode(ByteBuf out, int type, int flags, long cookie, long offset, long length, ByteBuf payload) {
        out.writeInt(NbdConstants.NBD_REQUEST_MAGIC);
        out.writeShort(flags);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeLong(offset);
        out.writeInt((int) length);
        if (payload != null) out.writeBytes(payload, payload.readerIndex(), payload.readableBytes());
    }
}
