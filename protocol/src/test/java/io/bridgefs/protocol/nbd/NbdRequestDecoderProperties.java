package io.bridgefs.protocol.nbd;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.Fragments;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.*;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

class NbdRequestDecoderProperties {
    static final int MAX = 64 * 1024;

    record Req(int type, int flags, long cookie, long offset, long length, byte[] payload) {}

    @Provide
    Arbitrary<Req> requests() {
        Arbitrary<Integer> types = Arbitraries.oneOf(Arbitraries.integers().between(0, 7), Arbitraries.integers().between(0, 0xFFFF));
        Arbitrary<Long> offsets = Arbitraries.oneOf(Arbitraries.longs(),
                Arbitraries.of(0L, (1L << 32) - 1, 1L << 32, (1L << 32) + 1, Long.MAX_VALUE, Long.MIN_VALUE, -1L));
        return Combinators.combine(types, Arbitraries.integers().between(0, 0xFFFF), Arbitraries.longs(), offsets,
                        Arbitraries.longs().between(0, 0xFFFF_FFFFL), Arbitraries.bytes().array(byte[].class).ofMaxSize(3000))
                .as((t, f, c, o, l, p) -> t == NbdConstants.NBD_CMD_WRITE ? new Req(t, f, c, o, p.length, p) : new Req(t, f, c, o, l, null));
    }

    static byte[] encode(List<Req> reqs) {
        ByteBuf b = Unpooled.buffer();
        for (Req r : reqs) {
            NbdRequest.encode(b, r.type, r.flags, r.cookie, r.offset, r.length, r.payload == null ? null : Unpooled.wrappedBuffer(r.payload));
        }
        return Fragments.bytes(b);
    }

    @Property
    void roundTripUnderAnyFragmentation(@ForAll @Size(max = 12) List<@From("requests") Req> reqs,
                                        @ForAll @Size(max = 8) List<@IntRange(min = 1, max = 200) Integer> cuts) {
        List<Object> out = Fragments.decode(new NbdRequestDecoder(MAX), encode(reqs), cuts);
        try {
            assertEquals(reqs.size(), out.size());
            for (int i = 0; i < reqs.size(); i++) {
                Req r = reqs.get(i);
                NbdRequest d = (NbdRequest) out.get(i);
                assertEquals(r.type, d.type());
                assertEquals(r.flags, d.flags());
                assertEquals(r.cookie, d.cookie());
                assertEquals(r.offset, d.offset(), "64-bit offset must survive unsigned");
                assertEquals(r.length, d.length(), "32-bit length must survive unsigned");
                if (r.payload != null) {
                    NbdRequest.Write w = assertInstanceOf(NbdRequest.Write.class, d);
                    assertArrayEquals(r.payload, Fragments.bytes(w.payload().retain()));
                }
            }
        } finally {
            Fragments.releaseAll(out);
        }
    }

    @Property
    void oversizedWriteIsSkippedNotAllocated(@ForAll @IntRange(min = MAX + 1, max = 4 * MAX) int length,
                                              @ForAll @Size(max = 8) List<@IntRange(min = 1, max = 5000) Integer> cuts) {
        ByteBuf b = Unpooled.buffer();
        NbdRequest.encode(b, NbdConstants.NBD_CMD_WRITE, 0, 7, 0, length, Unpooled.wrappedBuffer(new byte[length]));
        NbdRequest.encode(b, NbdConstants.NBD_CMD_FLUSH, 0, 8, 0, 0, null);
        List<Object> out = Fragments.decode(new NbdRequestDecoder(MAX), Fragments.bytes(b), cuts);
        assertEquals(2, out.size());
        NbdRequest.OversizedWrite o = assertInstanceOf(NbdRequest.OversizedWrite.class, out.get(0));
        assertEquals(length, o.length());
        assertEquals(8, ((NbdRequest) out.get(1)).cookie(), "the stream stays in step after the skipped payload");
    }

    @Example
    void announcedLengthNearFourGiBNeverAllocates() {
        // header only: 4 GiB - 1 announced; the decoder must not wait to buffer it
        ByteBuf b = Unpooled.buffer();
        NbdRequest.encode(b, NbdConstants.NBD_CMD_WRITE, 0, 1, 0, 0xFFFF_FFFFL, null);
        List<Object> out = Fragments.decode(new NbdRequestDecoder(MAX), Fragments.bytes(b), List.of());
        assertEquals(1, out.size());
        assertInstanceOf(NbdRequest.OversizedWrite.class, out.get(0));
    }

    @Property
    void garbageNeverThrows(@ForAll @Size(max = 400) byte[] garbage, @ForAll @Size(max = 5) List<@IntRange(min = 1, max = 64) Integer> cuts) {
        List<Object> out = new ArrayList<>();
        assertDoesNotThrow(() -> out.addAll(Fragments.decode(new NbdRequestDecoder(MAX), garbage, cuts)));
        for (Object o : out) {
            assertInstanceOf(NbdRequest.class, o);
            if (o instanceof NbdRequest.Write w) assertTrue(w.payload().readableBytes() <= MAX);
        }
        Fragments.releaseAll(out);
    }

    @Example
    void badMagicStopsDecoding() {
        byte[] bytes = new byte[60];
        bytes[0] = 0x12;
        List<Object> out = Fragments.decode(new NbdRequestDecoder(MAX), bytes, List.of(7));
        assertEquals(1, out.size());
        assertInstanceOf(NbdRequest.BadMagic.class, out.get(0));
    }
}
