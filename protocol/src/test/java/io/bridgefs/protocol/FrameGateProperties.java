package io.bridgefs.protocol;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.nbd.NbdConstants;
import io.bridgefs.protocol.nbd.NbdRequest;
import io.bridgefs.protocol.nbd.NbdRequestDecoder;
import io.bridgefs.protocol.p9.P9Codec;
import io.bridgefs.protocol.p9.P9FrameDecoder;
import io.bridgefs.protocol.p9.P9Message;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.*;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/**
 * Both decoders with a {@link FrameGate}, under any fragmentation and a gate that refuses at random (the
 * decoder then consumes nothing until it is fed again): every frame still comes out, in order and
 * whole; a large frame is reserved before it is complete; what stays reserved once everything is
 * decoded is exactly what the decoded writes hold ({@code prepaid}); and a connection ending mid-frame
 * gives its reservation back.
 */
class FrameGateProperties {
    /** Counts reservations; refuses when told to. */
    static final class Gate implements FrameGate {
        long held, maxHeld;
        int asks;
        final List<Boolean> refusals;

        Gate(List<Boolean> refusals) {
            this.refusals = refusals;
        }

        @Override
        public boolean reserve(long bytes, Runnable retry) {
            if (!refusals.isEmpty() && refusals.get(asks++ % refusals.size())) return false;
            held += bytes;
            maxHeld = Math.max(maxHeld, held);
            return true;
        }

        @Override
        public void release(long bytes) {
            held -= bytes;
            assertTrue(held >= 0, "released more than reserved");
        }
    }

    /** A gate refusing as the list says (a list of refusals only would never let a frame through: it accepts all then). */
    static Gate gate(List<Boolean> refusals) {
        return new Gate(refusals.stream().allMatch(r -> r) ? List.of() : refusals);
    }

    static EmbeddedChannel gated(GatedDecoder d, Gate gate) {
        d.gate(gate);
        return new EmbeddedChannel(d);
    }

    /** Feeds the bytes in fragments, feeding nothing more (an empty read) after each refusal until the decoder moves on. */
    static List<Object> feed(EmbeddedChannel ch, byte[] bytes, List<Integer> cuts) {
        int pos = 0, i = 0;
        while (pos < bytes.length) {
            int n = Math.min(Math.max(1, cuts.isEmpty() ? bytes.length : cuts.get(i++ % cuts.size())), bytes.length - pos);
            ch.writeInbound(Unpooled.wrappedBuffer(bytes, pos, n));
            pos += n;
        }
        for (int k = 0; k < 64; k++) ch.writeInbound(Unpooled.EMPTY_BUFFER);     // the gate's resumes
        List<Object> out = new ArrayList<>();
        Object m;
        while ((m = ch.readInbound()) != null) out.add(m);
        return out;
    }

    @Provide
    Arbitrary<Integer> payloadSizes() {
        return Arbitraries.oneOf(Arbitraries.integers().between(0, 2000), Arbitraries.integers().between(FrameGate.MIN_GATED - 40, FrameGate.MIN_GATED + 3000));
    }

    @Property(tries = 60)
    void nbdWritesComeOutWholeAndHoldExactlyTheirReservation(@ForAll @Size(min = 1, max = 5) List<@From("payloadSizes") Integer> sizes,
                                                            @ForAll @Size(max = 6) List<@IntRange(min = 1, max = 70_000) Integer> cuts,
                                                            @ForAll @Size(max = 5) List<Boolean> refusals) {
        ByteBuf b = Unpooled.buffer();
        for (int i = 0; i < sizes.size(); i++) {
            byte[] p = new byte[sizes.get(i)];
            if (p.length > 0) p[p.length - 1] = (byte) (i + 1);
            NbdRequest.encode(b, NbdConstants.NBD_CMD_WRITE, 0, i, 4096L * i, p.length, Unpooled.wrappedBuffer(p));
        }
        Gate gate = gate(refusals);
        EmbeddedChannel ch = gated(new NbdRequestDecoder(1 << 20), gate);
        List<Object> out = feed(ch, Fragments.bytes(b), cuts);
        try {
            assertEquals(sizes.size(), out.size());
            long prepaid = 0;
            for (int i = 0; i < sizes.size(); i++) {
                NbdRequest.Write w = assertInstanceOf(NbdRequest.Write.class, out.get(i));
                assertEquals(i, w.cookie());
                assertEquals(sizes.get(i), w.payload().readableBytes());
                prepaid += NbdRequestDecoder.prepaid(w);
            }
            assertEquals(prepaid, gate.held, "what stays reserved is what the writes hold");
            if (sizes.stream().anyMatch(s -> s > FrameGate.MIN_GATED)) assertTrue(gate.maxHeld > 0);
        } finally {
            out.forEach(ReferenceCountUtil::release);
            ch.finishAndReleaseAll();
        }
    }

    @Property(tries = 40)
    void p9FramesComeOutWholeAndOnlyTwritesKeepTheirReservation(@ForAll @Size(min = 1, max = 4) List<@From("payloadSizes") Integer> sizes,
                                                               @ForAll @Size(max = 6) List<@IntRange(min = 1, max = 70_000) Integer> cuts,
                                                               @ForAll @Size(max = 5) List<Boolean> refusals) {
        ByteBuf b = Unpooled.buffer();
        for (int i = 0; i < sizes.size(); i++) {
            byte[] p = new byte[sizes.get(i)];
            P9Codec.encode(new P9Message.Twrite(i, 1, 0, Unpooled.wrappedBuffer(p)), b);
            P9Codec.encode(new P9Message.Tclunk(100 + i, 2), b);
        }
        Gate gate = gate(refusals);
        EmbeddedChannel ch = gated(new P9FrameDecoder(1 << 20), gate);
        List<Object> out = feed(ch, Fragments.bytes(b), cuts);
        try {
            assertEquals(2 * sizes.size(), out.size());
            long prepaid = 0;
            for (int i = 0; i < sizes.size(); i++) {
                P9Message.Twrite w = assertInstanceOf(P9Message.Twrite.class, out.get(2 * i));
                assertEquals(sizes.get(i), w.data().readableBytes());
                assertInstanceOf(P9Message.Tclunk.class, out.get(2 * i + 1));
                prepaid += P9FrameDecoder.prepaid(w);
            }
            assertEquals(prepaid, gate.held, "what stays reserved is what the Twrites hold");
        } finally {
            out.forEach(m -> {
                if (m instanceof P9Message.Payload p) p.release();      // a Twrite holds its data, but is not reference counted itself
                else ReferenceCountUtil.release(m);
            });
            ch.finishAndReleaseAll();
        }
    }

    @Example
    void aConnectionEndingMidFrameGivesItsReservationBack() {
        ByteBuf b = Unpooled.buffer();
        NbdRequest.encode(b, NbdConstants.NBD_CMD_WRITE, 0, 1, 0, 200_000, Unpooled.wrappedBuffer(new byte[200_000]));
        byte[] bytes = Fragments.bytes(b);
        Gate gate = gate(List.of());
        EmbeddedChannel ch = gated(new NbdRequestDecoder(1 << 20), gate);
        ch.writeInbound(Unpooled.wrappedBuffer(bytes, 0, 100_000));
        assertEquals(200_000, gate.held, "reserved before the payload is complete");
        assertNull(ch.readInbound());
        ch.finishAndReleaseAll();
        assertEquals(0, gate.held, "given back when the connection ends");
    }
}
