package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import net.jqwik.api.*;

/**
 * {@link FrameMeta} packs eleven fields an entry into four longs: any sequence of stores to any
 * entries reads back what eleven plain arrays would hold, so no store leaks into another field or
 * another entry (the cache model test covers how the cache uses them).
 */
class FrameMetaProperties {
    static final int ENTRIES = 5;

    /** One store: which entry, which field, which value. */
    record Op(int entry, int field, long value) {}

    @Provide
    Arbitrary<List<Op>> ops() {
        Arbitrary<Long> values = Arbitraries.oneOf(
                Arbitraries.longs(), Arbitraries.of(0L, -1L, 1L, 255L, 256L, (long) Integer.MAX_VALUE, (long) Integer.MIN_VALUE, (long) Integer.MAX_VALUE + 1));
        return Combinators.combine(Arbitraries.integers().between(0, ENTRIES - 1), Arbitraries.integers().between(0, 13), values)
                .as(Op::new).list().ofMaxSize(200);
    }

    /** The same fields in separate arrays: what the cache kept before the packing. */
    static final class Model {
        final long[] page = new long[ENTRIES];
        final int[] file = new int[ENTRIES], mem = new int[ENTRIES], pins = new int[ENTRIES], gen = new int[ENTRIES];
        final byte[] state = new byte[ENTRIES], freq = new byte[ENTRIES], queue = new byte[ENTRIES],
                filledBy = new byte[ENTRIES], touched = new byte[ENTRIES];
        final boolean[] dirty = new boolean[ENTRIES];
    }

    @Property(tries = 300)
    void storesReadBackAsSeparateArraysWouldHoldThem(@ForAll("ops") List<Op> ops) {
        FrameMeta meta = new FrameMeta(ENTRIES);
        Model m = new Model();
        for (Op op : ops) {
            int f = op.entry();
            int v = (int) op.value();
            switch (op.field()) {
                case 0 -> {   // a new key: the seven stores newEntry made one by one
                    meta.key(f, v, op.value(), v & 3);
                    m.file[f] = v;
                    m.page[f] = op.value();
                    m.state[f] = PageCache.LOADING;
                    m.dirty[f] = false;
                    m.freq[f] = 0;
                    m.filledBy[f] = (byte) (v & 3);
                    m.touched[f] = 0;
                }
                case 1 -> { meta.setMem(f, v); m.mem[f] = v; }
                case 2 -> assertEquals(m.pins[f]++, meta.pin(f), "pin returns the count before");
                case 3 -> assertEquals(--m.pins[f], meta.unpin(f), "unpin returns the count after");
                case 4 -> { meta.bumpGen(f); m.gen[f]++; }
                case 5 -> { meta.setState(f, (byte) v); m.state[f] = (byte) v; }
                case 6 -> { meta.setDirty(f, (v & 1) != 0); m.dirty[f] = (v & 1) != 0; }
                case 7 -> { meta.setFreq(f, v); m.freq[f] = (byte) v; }
                case 8 -> { meta.setQueue(f, (byte) v); m.queue[f] = (byte) v; }
                case 9 -> { meta.setFilledBy(f, v); m.filledBy[f] = (byte) v; }
                case 10 -> { meta.setTouched(f, v); m.touched[f] = (byte) v; }
                case 11 -> { meta.setFreq(f, -1); m.freq[f] = -1; }          // read ahead, not used yet
                case 12 -> { meta.setFreq(f, meta.freq(f) - 1); m.freq[f]--; }   // S3-FIFO's second chance
                default -> { for (int i = 0; i < (v & 7); i++) { meta.pin(f); m.pins[f]++; } }
            }
            for (int e = 0; e < ENTRIES; e++) {
                assertEquals(m.page[e], meta.page(e));
                assertEquals(m.file[e], meta.file(e));
                assertEquals(m.mem[e], meta.mem(e));
                assertEquals(m.pins[e], meta.pins(e));
                assertEquals(m.gen[e], meta.gen(e));
                assertEquals(m.state[e], meta.state(e));
                assertEquals(m.dirty[e], meta.dirty(e));
                assertEquals(m.freq[e], meta.freq(e));
                assertEquals(m.queue[e], meta.queue(e));
                assertEquals(m.filledBy[e], meta.filledBy(e));
                assertEquals(m.touched[e], meta.touched(e));
            }
        }
    }

    @Example
    void aGenerationWrapsWithoutTouchingThePinsOrTheNextEntry() {
        FrameMeta meta = new FrameMeta(2);
        meta.pin(0);
        meta.pin(0);
        for (long i = 0; i < (1L << 32) + 3; i++) meta.bumpGen(0);     // 2^32 + 3 writes: past the wrap
        assertEquals(3, meta.gen(0));
        assertEquals(2, meta.pins(0));
        assertEquals(0, meta.gen(1));
        assertEquals(0, meta.pins(1));
        assertEquals(0, meta.unpin(0) - 1, "the pins still count down from two");
    }
}
