package io.bridgefs.protocol.p9;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.Fragments;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.*;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/** Every 9P2000.L message: round trip, any fragmentation, garbage never escapes, oversize refused unread. */
class P9CodecProperties {

    /** A random message of the given type, built from its schema. */
    static P9Message random(int type, Random r) throws Exception {
        String schema = P9Codec.schemaOf(type);
        Object[] args = new Object[schema.length() + 1];
        args[0] = r.nextInt(0x10000);
        for (int i = 0; i < schema.length(); i++) {
            args[i + 1] = switch (schema.charAt(i)) {
                case 'b' -> r.nextInt(256);
                case 'h' -> r.nextInt(0x10000);
                case 'i' -> r.nextInt();
                case 'l' -> r.nextBoolean() ? r.nextLong() : (r.nextBoolean() ? -1L : (1L << 32) + r.nextInt(10));
                case 's' -> string(r);
                case 'Q' -> qid(r);
                case 'S' -> { List<String> l = new ArrayList<>(); for (int k = r.nextInt(17); k > 0; k--) l.add(string(r)); yield l; }
                case 'q' -> { List<Qid> l = new ArrayList<>(); for (int k = r.nextInt(17); k > 0; k--) l.add(qid(r)); yield l; }
                case 'D' -> { byte[] d = new byte[r.nextInt(3000)]; r.nextBytes(d); yield Unpooled.wrappedBuffer(d); }
                default -> throw new IllegalStateException();
            };
        }
        return P9Codec.construct(type, args);
    }

    static String string(Random r) {
        StringBuilder b = new StringBuilder();
        for (int n = r.nextInt(40); n > 0; n--) b.append(r.nextInt(10) == 0 ? 'é' : (char) ('a' + r.nextInt(26)));
        return b.toString();
    }

    static Qid qid(Random r) {
        return new Qid(r.nextInt(256), r.nextInt(), r.nextLong());
    }

    static List<Object> feed(byte[] bytes, List<Integer> cuts, long maxSize) {
        return Fragments.decode(new P9FrameDecoder(maxSize), bytes, cuts);
    }

    static byte[] bytes(ByteBuf b) {
        return Fragments.bytes(b);
    }

    /** Equality that compares payload contents (ByteBuf equality compares readable bytes). */
    static void assertSameMessage(P9Message want, P9Message got) {
        assertEquals(want.getClass(), got.getClass());
        assertEquals(want, got);
    }

    @Property(tries = 300)
    void everyMessageRoundTripsUnderAnyFragmentation(@ForAll long seed, @ForAll @Size(max = 6) List<@IntRange(min = 1, max = 300) Integer> cuts) throws Exception {
        Random r = new Random(seed);
        List<P9Message> msgs = new ArrayList<>();
        ByteBuf all = Unpooled.buffer();
        for (int type : P9Codec.types()) {
            P9Message m = random(type, r);
            msgs.add(m);
            P9Codec.encode(m, all);
        }
        List<Object> out = feed(bytes(all), cuts, 1 << 20);
        assertEquals(msgs.size(), out.size());
        for (int i = 0; i < msgs.size(); i++) {
            assertSameMessage(msgs.get(i), (P9Message) out.get(i));
            if (out.get(i) instanceof P9Message.Payload p) p.release();
        }
    }

    @Property
    void garbageNeverThrowsAndNeverYieldsMoreThanItHolds(@ForAll @Size(max = 400) byte[] garbage,
                                                         @ForAll @Size(max = 5) List<@IntRange(min = 1, max = 64) Integer> cuts) {
        List<Object> out = new ArrayList<>();
        assertDoesNotThrow(() -> out.addAll(feed(garbage, cuts, 8192)));
        for (Object o : out) {
            assertInstanceOf(P9Message.class, o);
            if (o instanceof P9Message.Payload p) {
                assertTrue(p.data().readableBytes() <= garbage.length);
                p.release();
            }
        }
    }

    @Property(tries = 100)
    void framesOverMsizeAreSkippedUnread(@ForAll @IntRange(min = 9000, max = 200000) int size,
                                         @ForAll @Size(max = 4) List<@IntRange(min = 1, max = 5000) Integer> cuts) {
        ByteBuf b = Unpooled.buffer();
        P9Codec.encode(new P9Message.Twrite(3, 1, 0, Unpooled.wrappedBuffer(new byte[size])), b);
        P9Codec.encode(new P9Message.Tclunk(4, 1), b);
        List<Object> out = feed(bytes(b), cuts, 8192);
        assertEquals(2, out.size());
        P9Message.Oversized o = assertInstanceOf(P9Message.Oversized.class, out.get(0));
        assertEquals(3, o.tag());
        assertEquals(new P9Message.Tclunk(4, 1), out.get(1), "in step after the skipped frame");
    }

    /**
     * After any prefix of a stream of frames, the decoder says what the frame in progress lacks (0 on a
     * frame's boundary or before its header is whole) and how many frames it found whole: the server's
     * receive low-water mark is set from the first.
     */
    @Property(tries = 200)
    void theBytesAFrameInProgressLacksAreKnownAfterAnyPrefix(@ForAll @Size(min = 1, max = 5) List<@IntRange(min = 0, max = 70000) Integer> sizes,
                                                             @ForAll @Size(max = 6) List<@IntRange(min = 1, max = 9000) Integer> cuts) {
        ByteBuf b = Unpooled.buffer();
        List<Integer> ends = new ArrayList<>();
        for (int i = 0; i < sizes.size(); i++) {
            P9Codec.encode(new P9Message.Twrite(i, 1, 0, Unpooled.wrappedBuffer(new byte[sizes.get(i)])), b);
            ends.add(b.writerIndex());
        }
        byte[] stream = bytes(b);
        P9FrameDecoder d = new P9FrameDecoder(1 << 20);
        io.netty.channel.embedded.EmbeddedChannel ch = new io.netty.channel.embedded.EmbeddedChannel(d);
        int pos = 0, i = 0;
        while (pos < stream.length) {
            int n = Math.min(cuts.isEmpty() ? stream.length : cuts.get(i++ % cuts.size()), stream.length - pos);
            ch.writeInbound(Unpooled.wrappedBuffer(stream, pos, n));
            pos += n;
            int whole = 0, start = 0;
            while (whole < ends.size() && ends.get(whole) <= pos) start = ends.get(whole++);
            long lacks = whole == ends.size() || pos - start < P9.HEADER ? 0 : ends.get(whole) - pos;
            assertEquals(lacks, d.bytesAwaited(), "after " + pos + " of " + stream.length + " bytes");
            assertEquals(whole, d.wholeFrames());
        }
        assertEquals(sizes.size(), ch.inboundMessages().size());
        for (Object m; (m = ch.readInbound()) != null; ) ((P9Message.Payload) m).release();
        ch.finish();
    }

    @Example
    void aDeclaredCountBeyondTheFrameIsMalformedNotAllocated() {
        ByteBuf b = Unpooled.buffer();
        b.writeIntLE(7 + 4 + 8 + 4);
        b.writeByte(118);         // Twrite
        b.writeShortLE(9);
        b.writeIntLE(1);
        b.writeLongLE(0);
        b.writeIntLE(0x7FFFFFFF); // count: 2 GiB announced, no data
        List<Object> out = feed(bytes(b), List.of(), 1 << 20);
        P9Message.Malformed m = assertInstanceOf(P9Message.Malformed.class, out.get(0));
        assertEquals(9, m.tag());
        ByteBuf w = Unpooled.buffer();
        w.writeIntLE(7 + 4 + 4 + 2);
        w.writeByte(110);         // Twalk with 60000 names announced in 2 bytes
        w.writeShortLE(10);
        w.writeIntLE(1);
        w.writeIntLE(2);
        w.writeShortLE(60000);
        assertInstanceOf(P9Message.Malformed.class, feed(bytes(w), List.of(), 1 << 20).get(0));
    }

    @Example
    void unknownTypeAndTinyFrame() {
        ByteBuf b = Unpooled.buffer();
        b.writeIntLE(7);
        b.writeByte(200);
        b.writeShortLE(5);
        assertEquals(new P9Message.Unknown(5, 200), feed(bytes(b), List.of(), 8192).get(0));
        ByteBuf t = Unpooled.buffer();
        t.writeIntLE(3);
        t.writeByte(100);
        t.writeShortLE(1);
        t.writeBytes(new byte[50]);
        List<Object> out = feed(bytes(t), List.of(), 8192);
        assertEquals(1, out.size());
        assertInstanceOf(P9Message.Malformed.class, out.get(0));
    }
}
