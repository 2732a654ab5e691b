package io.bridgefs.server.nbd;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;

import com.codahale.metrics.MetricRegistry;
import io.bridgefs.protocol.nbd.NbdHandshake;
import io.bridgefs.protocol.nbd.NbdHandshakeDecoder;
import io.bridgefs.protocol.nbd.NbdOptionData;
import io.bridgefs.protocol.nbd.NbdOptionReply;
import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.FileKey;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.metrics.IoMetrics;
import io.bridgefs.server.tls.NbdTls;
import io.bridgefs.server.tls.TlsMode;
import io.bridgefs.server.tls.TlsSettings;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;
import org.bouncycastle.tls.BasicTlsPSKIdentity;
import org.bouncycastle.tls.PSKTlsClient;
import org.bouncycastle.tls.TlsClientProtocol;
import org.bouncycastle.tls.crypto.impl.bc.BcTlsCrypto;

/**
 * Model-based test of option negotiation in the three TLS modes: random sequences of options, some of
 * them before and some after a real TLS handshake (BouncyCastle's client, PSK as user 'alice', run
 * in-process against the server's handler), each reply compared with what a small model of the rules
 * predicts: TLS_REQD before TLS with require (and for tls-only exports), POLICY for exports of other
 * users, INVALID for STARTTLS twice or with data, UNSUP without TLS configured, tls-only exports not
 * listed in plaintext, and whatever was negotiated before STARTTLS (structured replies) forgotten.
 */
class NbdTlsNegotiationProperties {
    static final byte[] ALICE_KEY = HexFormat.of().parseHex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");

    static final PageCache CACHE = new PageCache(64 * 4096, CacheMode.WRITEBACK);

    enum Opt { LIST, INFO_OPEN, INFO_LOCKED, INFO_CAROLS, INFO_NONE, STRUCTURED, STARTTLS, STARTTLS_DATA, UNKNOWN }

    /** The server side in an EmbeddedChannel, and a BouncyCastle PSK client once STARTTLS is done. */
    static final class World {
        final EmbeddedChannel ch;
        TlsClientProtocol client;

        World(TlsMode mode) throws IOException {
            var file = CACHE.open(new FileKey(9, 9), new NbdSessionModelProperties.Mem(), false);
            IoMetrics m = new IoMetrics(new MetricRegistry(), "nbd", "x");
            List<NbdExport> exports = List.of(
                    new NbdExport("open", null, Path.of("o"), false, file, m),
                    new NbdExport("locked", null, Path.of("l"), false, file, m, true, List.of()),
                    new NbdExport("carols", null, Path.of("c"), false, file, m, false, List.of("carol")));
            NbdTls tls = NbdTls.OFF;
            if (mode != TlsMode.OFF) {
                Path keys = Files.createTempFile("keys", ".psk");
                Files.writeString(keys, "alice:" + HexFormat.of().formatHex(ALICE_KEY) + "\ncarol:" + HexFormat.of().formatHex(new byte[32]) + "\n");
                tls = NbdTls.load(new TlsSettings(mode, null, false, keys));
                Files.delete(keys);
            }
            var ctx = new NbdServerContext(new NbdExports(exports), new NbdSessionModelProperties.DirectExecutor(),
                    new io.bridgefs.server.net.MemoryBudget(1 << 26), tls);
            ch = new EmbeddedChannel();
            ch.pipeline().addLast(NbdHandshakeHandler.DECODER, new NbdHandshakeDecoder()).addLast("nbd-handshake", new NbdHandshakeHandler(ctx));
            ch.pipeline().fireChannelActive();
            ByteBuf greeting = ch.readOutbound();
            greeting.release();
            send(Unpooled.buffer().writeInt(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES));
        }

        /** Server output so far, decrypted once TLS is up. */
        ByteBuf received() throws IOException {
            ch.runPendingTasks();
            ByteBuf all = Unpooled.buffer();
            Object o;
            while ((o = ch.readOutbound()) != null) {
                ByteBuf b = (ByteBuf) o;
                if (client == null) {
                    all.writeBytes(b);
                } else {
                    byte[] a = new byte[b.readableBytes()];
                    b.readBytes(a);
                    client.offerInput(a);
                }
                b.release();
            }
            if (client != null) {
                int n = client.getAvailableInputBytes();
                byte[] a = new byte[n];
                client.readInput(a, 0, n);
                all.writeBytes(a);
            }
            return all;
        }

        void send(ByteBuf plain) throws IOException {
            if (client == null) {
                ch.writeInbound(plain);
            } else {
                byte[] a = new byte[plain.readableBytes()];
                plain.readBytes(a);
                plain.release();
                client.writeApplicationData(a, 0, a.length);
                flushClient();
            }
        }

        private void flushClient() {
            int n = client.getAvailableOutputBytes();
            if (n == 0) return;
            byte[] a = new byte[n];
            client.readOutput(a, 0, n);
            ch.writeInbound(Unpooled.wrappedBuffer(a));
        }

        List<NbdOptionReply> option(int opt, byte[] data) throws IOException {
            ByteBuf b = Unpooled.buffer();
            NbdHandshake.encodeOption(b, opt, data);
            send(b);
            ByteBuf out = received();
            List<NbdOptionReply> rs = new ArrayList<>();
            NbdOptionReply r;
            while ((r = NbdOptionReply.decode(out)) != null) rs.add(r);
            assertFalse(out.isReadable(), "a partial option reply");
            out.release();
            return rs;
        }

        /** After STARTTLS's ACK: a TLS 1.2 PSK handshake as alice, driven in-process. */
        void handshake() throws IOException {
            client = new TlsClientProtocol();
            client.connect(new PSKTlsClient(new BcTlsCrypto(new SecureRandom()), new BasicTlsPSKIdentity("alice", ALICE_KEY)));
            for (int i = 0; i < 20 && client.isHandshaking(); i++) {
                flushClient();
                ch.runPendingTasks();
                Object o;
                while ((o = ch.readOutbound()) != null) {
                    ByteBuf b = (ByteBuf) o;
                    byte[] a = new byte[b.readableBytes()];
                    b.readBytes(a);
                    b.release();
                    client.offerInput(a);
                }
            }
            flushClient();
            assertFalse(client.isHandshaking(), "the TLS handshake completes");
        }
    }

    @Provide
    Arbitrary<List<Opt>> options() {
        return Arbitraries.of(Opt.class).list().ofMinSize(1).ofMaxSize(12);
    }

    @Property(tries = 60)
    void negotiationFollowsTheRules(@ForAll TlsMode mode, @ForAll("options") List<Opt> options) throws IOException {
        World w = new World(mode);
        boolean tls = false, structured = false;
        for (Opt o : options) {
            boolean gated = mode == TlsMode.REQUIRE && !tls;
            switch (o) {
                case LIST -> {
                    List<NbdOptionReply> rs = w.option(NBD_OPT_LIST, new byte[0]);
                    if (gated) {
                        assertEquals(List.of(NBD_REP_ERR_TLS_REQD), types(rs));
                        continue;
                    }
                    Set<String> names = new TreeSet<>();
                    for (NbdOptionReply r : rs) if (r.type() == NBD_REP_SERVER) names.add(new String(r.data(), 4, r.data().length - 4, StandardCharsets.UTF_8));
                    assertEquals(tls ? Set.of("locked", "open") : Set.of("open"), names, "exports listed, tls=" + tls);
                    assertEquals(NBD_REP_ACK, rs.get(rs.size() - 1).type());
                }
                case INFO_OPEN, INFO_LOCKED, INFO_CAROLS, INFO_NONE -> {
                    String name = switch (o) {
                        case INFO_OPEN -> "open";
                        case INFO_LOCKED -> "locked";
                        case INFO_CAROLS -> "carols";
                        default -> "none";
                    };
                    List<NbdOptionReply> rs = w.option(NBD_OPT_INFO, new NbdOptionData.InfoRequest(name, List.of()).encode());
                    int want = gated ? NBD_REP_ERR_TLS_REQD : name.equals("none") ? NBD_REP_ERR_UNKNOWN
                            : name.equals("locked") && !tls ? NBD_REP_ERR_TLS_REQD : name.equals("carols") ? NBD_REP_ERR_POLICY : NBD_REP_ACK;
                    assertEquals(want, rs.get(rs.size() - 1).type(), "INFO " + name + " in " + mode + ", tls=" + tls);
                    if (want != NBD_REP_ACK) assertEquals(1, rs.size(), "a refusal tells nothing else");
                }
                case STRUCTURED -> {
                    List<NbdOptionReply> rs = w.option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
                    assertEquals(List.of(gated ? NBD_REP_ERR_TLS_REQD : NBD_REP_ACK), types(rs));
                    if (!gated) structured = true;
                }
                case STARTTLS_DATA -> assertEquals(List.of(mode == TlsMode.OFF ? NBD_REP_ERR_UNSUP : NBD_REP_ERR_INVALID),
                        types(w.option(NBD_OPT_STARTTLS, new byte[] {1})));
                case STARTTLS -> {
                    List<NbdOptionReply> rs = w.option(NBD_OPT_STARTTLS, new byte[0]);
                    if (mode == TlsMode.OFF) {
                        assertEquals(List.of(NBD_REP_ERR_UNSUP), types(rs));
                    } else if (tls) {
                        assertEquals(List.of(NBD_REP_ERR_INVALID), types(rs), "STARTTLS twice");
                    } else {
                        assertEquals(List.of(NBD_REP_ACK), types(rs));
                        w.handshake();
                        tls = true;
                        structured = false;                // forgotten at STARTTLS
                    }
                }
                case UNKNOWN -> assertEquals(List.of(gated ? NBD_REP_ERR_TLS_REQD : NBD_REP_ERR_UNSUP), types(w.option(99, new byte[0])));
            }
        }
        // finally GO on the plain export: refused before TLS with require, else its flags say whether
        // structured replies are in force (only if negotiated since the last STARTTLS)
        List<NbdOptionReply> rs = w.option(NBD_OPT_GO, new NbdOptionData.InfoRequest("open", List.of()).encode());
        if (mode == TlsMode.REQUIRE && !tls) {
            assertEquals(List.of(NBD_REP_ERR_TLS_REQD), types(rs));
            return;
        }
        NbdOptionReply export = rs.get(0);
        assertEquals(NBD_REP_INFO, export.type());
        int flags = ((export.data()[10] & 0xFF) << 8) | (export.data()[11] & 0xFF);
        assertEquals(structured, (flags & NBD_FLAG_SEND_DF) != 0, "structured replies in force: " + structured);
        w.ch.finishAndReleaseAll();
    }

    static List<Integer> types(List<NbdOptionReply> rs) {
        return rs.stream().map(NbdOptionReply::type).toList();
    }
}
