package io.bridgefs.protocol.nbd;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.Fragments;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import net.jqwik.api.*;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import net.jqwik.api.constraints.StringLength;

class NbdReplyProperties {

    @Property
    void simpleReadReplyRoundTrip(@ForAll long cookie, @ForAll @Size(max = 2000) byte[] data) {
        ByteBuf b = Unpooled.buffer();
        NbdReply.simple(b, cookie, 0);
        b.writeBytes(data);
        NbdReplyDecoder.Reply r = NbdReplyDecoder.decode(b, c -> data.length);
        assertNotNull(r);
        assertFalse(r.structured());
        assertEquals(cookie, r.cookie());
        assertArrayEquals(data, Fragments.bytes(r.payload()));
        b.release();
    }

    @Property
    void offsetDataChunkRoundTrip(@ForAll long cookie, @ForAll long offset, @ForAll @Size(min = 1, max = 2000) byte[] data) {
        ByteBuf b = Unpooled.buffer();
        NbdReply.offsetDataHeader(b, NbdConstants.NBD_REPLY_FLAG_DONE, cookie, offset, data.length);
        b.writeBytes(data);
        NbdReplyDecoder.Reply r = NbdReplyDecoder.decode(b, c -> 0);
        assertTrue(r.structured() && r.done());
        assertEquals(NbdConstants.NBD_REPLY_TYPE_OFFSET_DATA, r.type());
        assertEquals(offset, r.payload().readLong());
        assertArrayEquals(data, Fragments.bytes(r.payload()));
        b.release();
    }

    @Property
    void errorChunkRoundTrip(@ForAll long cookie, @ForAll @IntRange(min = 1) int error, @ForAll @StringLength(max = 100) String msg) {
        ByteBuf b = Unpooled.buffer();
        NbdReply.error(b, NbdConstants.NBD_REPLY_FLAG_DONE, cookie, error, msg);
        NbdReplyDecoder.Reply r = NbdReplyDecoder.decode(b, c -> 0);
        assertEquals(NbdConstants.NBD_REPLY_TYPE_ERROR, r.type());
        assertEquals(error, r.error());
        r.payload().release();
        b.release();
    }

    @Property
    void blockStatusChunkRoundTrip(@ForAll long cookie, @ForAll @Size(min = 1, max = 30) java.util.List<@IntRange(min = 1) Integer> lengths) {
        long[] ext = new long[2 * lengths.size()];
        for (int i = 0; i < lengths.size(); i++) {
            ext[2 * i] = lengths.get(i);
            ext[2 * i + 1] = i % 4;
        }
        ByteBuf b = Unpooled.buffer();
        NbdReply.blockStatus(b, NbdConstants.NBD_REPLY_FLAG_DONE, cookie, 1, ext, lengths.size());
        NbdReplyDecoder.Reply r = NbdReplyDecoder.decode(b, c -> 0);
        assertEquals(NbdConstants.NBD_REPLY_TYPE_BLOCK_STATUS, r.type());
        ByteBuf p = r.payload();
        assertEquals(1, p.readInt());
        for (int i = 0; i < lengths.size(); i++) {
            assertEquals((long) lengths.get(i), p.readUnsignedInt());
            assertEquals(i % 4, p.readInt());
        }
        p.release();
        b.release();
    }
}
