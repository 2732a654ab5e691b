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
import net.jqwik.api.constraints.StringLength;

class NbdHandshakeProperties {

    @Property
    void optionsRoundTripUnderAnyFragmentation(@ForAll int clientFlags,
                                               @ForAll @Size(max = 6) List<@IntRange(min = 0, max = 20) Integer> options,
                                               @ForAll @Size(max = 300) byte[] data,
                                               @ForAll @Size(max = 6) List<@IntRange(min = 1, max = 50) Integer> cuts) {
        ByteBuf b = Unpooled.buffer();
        b.writeInt(clientFlags);
        for (int o : options) NbdHandshake.encodeOption(b, o, data);
        List<Object> out = Fragments.decode(new NbdHandshakeDecoder(), Fragments.bytes(b), cuts);
        assertEquals(1 + options.size(), out.size());
        assertEquals(new NbdHandshake.ClientFlags(clientFlags), out.get(0));
        for (int i = 0; i < options.size(); i++) {
            NbdHandshake.Option o = assertInstanceOf(NbdHandshake.Option.class, out.get(i + 1));
            assertEquals(options.get(i), o.option());
            assertArrayEquals(data, o.data());
        }
    }

    @Property(tries = 50)
    void oversizedOptionIsSkipped(@ForAll @IntRange(min = NbdConstants.MAX_OPTION_LENGTH + 1, max = 3 * NbdConstants.MAX_OPTION_LENGTH) int length,
                                   @ForAll @Size(max = 4) List<@IntRange(min = 1, max = 9000) Integer> cuts) {
        ByteBuf b = Unpooled.buffer();
        b.writeInt(3);
        NbdHandshake.encodeOption(b, NbdConstants.NBD_OPT_GO, new byte[length]);
        NbdHandshake.encodeOption(b, NbdConstants.NBD_OPT_ABORT, new byte[0]);
        List<Object> out = Fragments.decode(new NbdHandshakeDecoder(), Fragments.bytes(b), cuts);
        assertEquals(3, out.size());
        assertEquals(new NbdHandshake.OversizedOption(NbdConstants.NBD_OPT_GO, length), out.get(1));
        assertEquals(NbdConstants.NBD_OPT_ABORT, ((NbdHandshake.Option) out.get(2)).option());
    }

    @Property
    void garbageNeverThrows(@ForAll @Size(max = 300) byte[] garbage, @ForAll @Size(max = 4) List<@IntRange(min = 1, max = 40) Integer> cuts) {
        List<Object> out = new ArrayList<>();
        assertDoesNotThrow(() -> out.addAll(Fragments.decode(new NbdHandshakeDecoder(), garbage, cuts)));
        for (Object o : out) {
            assertInstanceOf(NbdHandshake.class, o);
            if (o instanceof NbdHandshake.Option opt) assertTrue(opt.data().length <= NbdConstants.MAX_OPTION_LENGTH);
        }
    }

    @Property
    void infoRequestRoundTrip(@ForAll @StringLength(max = 300) String name, @ForAll @Size(max = 20) List<@IntRange(min = 0, max = 65535) Integer> infos) throws Exception {
        Assume.that(name.indexOf('\0') < 0 && isWellFormed(name));
        var r = new NbdOptionData.InfoRequest(name, infos);
        assertEquals(r, NbdOptionData.parseInfo(r.encode()));
    }

    @Property
    void metaContextRoundTrip(@ForAll @StringLength(max = 100) String name, @ForAll @Size(max = 8) List<@StringLength(max = 40) String> queries) throws Exception {
        Assume.that(name.indexOf('\0') < 0 && isWellFormed(name));
        Assume.that(queries.stream().allMatch(q -> q.indexOf('\0') < 0 && isWellFormed(q)));
        var r = new NbdOptionData.MetaContextRequest(name, queries);
        assertEquals(r, NbdOptionData.parseMetaContext(r.encode()));
    }

    @Property
    void optionDataGarbageIsMalformedOrParsedNeverThrown(@ForAll @Size(max = 200) byte[] garbage) {
        try {
            NbdOptionData.parseInfo(garbage);
        } catch (NbdOptionData.Malformed expected) {
            // fine: answered NBD_REP_ERR_INVALID
        }
        try {
            NbdOptionData.parseMetaContext(garbage);
        } catch (NbdOptionData.Malformed expected) {
            // fine
        }
    }

    @Example
    void hugeQueryCountIsRefusedBeforeAllocation() {
        ByteBuf b = Unpooled.buffer();
        b.writeInt(0);              // empty export name
        b.writeInt(0x7FFF_FFFF);    // two billion queries announced
        assertThrows(NbdOptionData.Malformed.class, () -> NbdOptionData.parseMetaContext(Fragments.bytes(b)));
    }

    @Property
    void optionRepliesRoundTrip(@ForAll int option, @ForAll int type, @ForAll @Size(max = 500) byte[] data) {
        ByteBuf b = Unpooled.buffer();
        new NbdOptionReply(option, type, data).encode(b);
        NbdOptionReply r = NbdOptionReply.decode(b);
        assertNotNull(r);
        assertEquals(option, r.option());
        assertEquals(type, r.type());
        assertArrayEquals(data, r.data());
        assertEquals(0, b.readableBytes());
        b.release();
    }

    private static boolean isWellFormed(String s) {
        return new String(s.getBytes(java.nio.charset.StandardCharsets.UTF_8), java.nio.charset.StandardCharsets.UTF_8).equals(s);
    }
}
