package io.bridgefs.clienttests;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.InputStream;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * NBD over TLS with the clients people use: keys and certificates made with GnuTLS's psktool and
 * certtool, then qemu-img with qemu's tls-creds objects, nbdinfo and nbdcopy with nbds:// URIs, and a
 * guest whose disk is served over TLS; and every refusal that must hold (plaintext against require,
 * a wrong key, an unknown user, a user not allowed, a foreign or revoked certificate, STARTTLS twice,
 * garbage inside the TLS stream), each while another client goes on copying.
 */
class NbdTlsIT {
    static final long MIB = 1 << 20;
    @TempDir
    static Path keys;

    static Tools.Result run(String... cmd) throws Exception {
        return Tools.run(keys, Duration.ofSeconds(60), List.of(cmd));
    }

    static void template(String name, String text) throws Exception {
        Files.writeString(keys.resolve(name), text);
    }

    /** A CA in {@code dir}, and certificates it signs. */
    static void ca(String dir, String cn) throws Exception {
        Files.createDirectories(keys.resolve(dir));
        template(dir + "/ca.info", "cn = " + cn + "\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 30\n");
        run("certtool", "--generate-privkey", "--outfile", dir + "/ca-key.pem").ok("CA key");
        run("certtool", "--generate-self-signed", "--load-privkey", dir + "/ca-key.pem", "--template", dir + "/ca.info",
                "--outfile", dir + "/ca-cert.pem").ok("CA certificate");
    }

    /** A certificate {@code out}-cert.pem / {@code out}-key.pem signed by the CA of {@code caDir}. */
    static void cert(String caDir, String out, String cn, boolean server) throws Exception {
        template(out + ".info", "cn = " + cn + "\n" + (server ? "dns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\n" : "tls_www_client\n")
                + "signing_key\nencryption_key\nexpiration_days = 30\n");
        run("certtool", "--generate-privkey", "--outfile", out + "-key.pem").ok("key");
        run("certtool", "--generate-certificate", "--load-privkey", out + "-key.pem", "--load-ca-certificate", caDir + "/ca-cert.pem",
                "--load-ca-privkey", caDir + "/ca-key.pem", "--template", out + ".info", "--outfile", out + "-cert.pem").ok("certificate " + cn);
    }

    /** A qemu client directory: ca-cert.pem, client-cert.pem, client-key.pem. */
    static void clientDir(String dir, String caDir, String certPrefix) throws Exception {
        Files.createDirectories(keys.resolve(dir));
        Files.copy(keys.resolve(caDir + "/ca-cert.pem"), keys.resolve(dir + "/ca-cert.pem"));
        if (certPrefix != null) {
            Files.copy(keys.resolve(certPrefix + "-cert.pem"), keys.resolve(dir + "/client-cert.pem"));
            Files.copy(keys.resolve(certPrefix + "-key.pem"), keys.resolve(dir + "/client-key.pem"));
        }
    }

    @BeforeAll
    static void credentials() throws Exception {
        Tools.require("certtool", "psktool", "qemu-img", "nbdinfo", "nbdcopy");
        // pre-shared keys: alice's right key, a wrong key for alice, and a user the server does not know
        for (String[] k : new String[][] {{"psk", "alice"}, {"psk-wrong", "alice"}, {"psk-bob", "bob"}, {"psk-carol", "carol"}}) {
            Files.createDirectories(keys.resolve(k[0]));
            run("psktool", "-u", k[1], "-p", k[0] + "/keys.psk").ok("psktool");
        }
        // the server's file holds alice's and carol's keys
        Files.writeString(keys.resolve("psk/keys.psk"), Files.readString(keys.resolve("psk/keys.psk"))
                + Files.readString(keys.resolve("psk-carol/keys.psk")));
        // X.509: the CA, the server, alice's client certificate, mallory's (to be revoked), a foreign CA's client
        ca("ca", "bridgefs test CA");
        cert("ca", "server", "localhost", true);
        cert("ca", "alice", "alice", false);
        cert("ca", "mallory", "mallory", false);
        ca("evil", "another CA");
        cert("evil", "eve", "alice", false);
        template("crl.info", "crl_next_update = 30\ncrl_number = 1\n");
        Files.createDirectories(keys.resolve("server-dir"));
        Files.copy(keys.resolve("ca/ca-cert.pem"), keys.resolve("server-dir/ca-cert.pem"));
        Files.copy(keys.resolve("server-cert.pem"), keys.resolve("server-dir/server-cert.pem"));
        Files.copy(keys.resolve("server-key.pem"), keys.resolve("server-dir/server-key.pem"));
        run("certtool", "--generate-crl", "--load-ca-privkey", "ca/ca-key.pem", "--load-ca-certificate", "ca/ca-cert.pem",
                "--load-certificate", "mallory-cert.pem", "--template", "crl.info", "--outfile", "server-dir/ca-crl.pem").ok("CRL");
        clientDir("client-alice", "ca", "alice");
        clientDir("client-mallory", "ca", "mallory");
        clientDir("client-eve", "ca", "eve");
        // qemu checks its own certificate against its CA file before connecting: give it both CAs, so
        // that it trusts the server and still presents a certificate our CA never signed
        Files.writeString(keys.resolve("client-eve/ca-cert.pem"), Files.readString(keys.resolve("ca/ca-cert.pem"))
                + Files.readString(keys.resolve("evil/ca-cert.pem")));
        clientDir("client-none", "ca", null);
    }

    static String pskObject(String dir, String user) {
        return "tls-creds-psk,id=tls0,endpoint=client,dir=" + keys.resolve(dir) + ",username=" + user;
    }

    static String x509Object(String dir) {
        return "tls-creds-x509,id=tls0,endpoint=client,dir=" + keys.resolve(dir);
    }

    static Tools.Result qemuImgInfo(BridgefsProcess s, String object, String export) throws Exception {
        return Tools.run(Duration.ofSeconds(60), "qemu-img", "info", "--object", object, "--image-opts",
                "file.driver=nbd,file.host=127.0.0.1,file.port=" + s.nbdPort + ",file.export=" + export + ",file.tls-creds=tls0");
    }

    @Test
    void pskWithQemuImgNbdinfoAndNbdcopy(@TempDir Path dir) throws Exception {
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 1024 * MIB, 3, 0, 32 * MIB, 300 * MIB, 32 * MIB, 1000 * MIB, 24 * MIB);
        Tools.sparseImage(dir.resolve("secret.img"), 16 * MIB, 4, 0, MIB);
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--nbd-export", "disk=" + img, "--nbd-export", "secret=secret.img,users=carol",
                "--tls", "require", "--tls-psk", keys.resolve("psk/keys.psk").toString())) {
            assertTrue(s.stdout.toString().contains("NBD TLS: require, pre-shared keys"), s.stdout.toString());
            Tools.Result info = qemuImgInfo(s, pskObject("psk", "alice"), "disk").ok("qemu-img info over TLS-PSK");
            assertTrue(info.out().contains("virtual size: 1 GiB"), info.out());
            String uri = "nbds://alice@127.0.0.1:" + s.nbdPort + "/disk?tls-psk-file=" + keys.resolve("psk/keys.psk");
            assertTrue(Tools.run(Duration.ofSeconds(30), "nbdinfo", uri).ok("nbdinfo nbds://").out().contains("1073741824"));
            // 1 GiB out and back in with four connections, compared
            Path out = dir.resolve("out.img");
            Tools.run(Duration.ofSeconds(300), "nbdcopy", "-C", "4", uri, out.toString()).ok("nbdcopy out");
            Tools.run(Duration.ofSeconds(60), "cmp", img.toString(), out.toString()).ok("copied image equals the export");
            Tools.sparseImage(dir.resolve("in.img"), 1024 * MIB, 9, 64 * MIB, 48 * MIB, 700 * MIB, 16 * MIB);
            Tools.run(Duration.ofSeconds(300), "nbdcopy", "-C", "4", dir.resolve("in.img").toString(), uri).ok("nbdcopy in");
            Tools.run(Duration.ofSeconds(300), "qemu-img", "compare", "--object", pskObject("psk", "alice"), "--image-opts",
                    "driver=raw,file.driver=file,file.filename=" + dir.resolve("in.img"),
                    "driver=raw,file.driver=nbd,file.host=127.0.0.1,file.port=" + s.nbdPort + ",file.export=disk,file.tls-creds=tls0")
                    .ok("qemu-img compare over TLS");
            // carol may use 'secret' (qemu-img convert over PSK), alice may not
            qemuImgInfo(s, pskObject("psk-carol", "carol"), "secret").ok("carol on her export");
            Tools.run(Duration.ofSeconds(60), "qemu-img", "convert", "--object", pskObject("psk-carol", "carol"), "--image-opts",
                    "driver=raw,file.driver=nbd,file.host=127.0.0.1,file.port=" + s.nbdPort + ",file.export=secret,file.tls-creds=tls0",
                    "-O", "raw", dir.resolve("secret-copy.img").toString()).ok("qemu-img convert over TLS-PSK");
            Tools.run(Duration.ofSeconds(60), "cmp", dir.resolve("secret.img").toString(), dir.resolve("secret-copy.img").toString())
                    .ok("converted image equals the export");
            Tools.Result denied = qemuImgInfo(s, pskObject("psk", "alice"), "secret");
            assertNotEquals(0, denied.exit(), "alice must not open carol's export");
            assertTrue(s.log().contains("refused to 'alice'"), s.log());
            assertTrue(s.metric("bridgefs_tls_handshakes_total{result=\"ok\"}") >= 4);
            assertEquals(0, s.stop());
        }
    }

    @Test
    void x509WithQemuImgAndNbdinfo(@TempDir Path dir) throws Exception {
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 64 * MIB, 5, 0, 4 * MIB);
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--nbd-export", "disk=" + img, "--nbd-export", "alices=disk.img,users=alice",
                "--tls", "require", "--tls-certificates", keys.resolve("server-dir").toString(), "--tls-verify-peer")) {
            assertTrue(qemuImgInfo(s, x509Object("client-alice"), "disk").ok("qemu-img info over X.509").out().contains("virtual size: 64 MiB"));
            qemuImgInfo(s, x509Object("client-alice"), "alices").ok("alice's certificate names her: users=alice");
            Path out = dir.resolve("out.img");
            Tools.run(Duration.ofSeconds(60), "qemu-img", "convert", "--object", x509Object("client-alice"), "--image-opts",
                    "driver=raw,file.driver=nbd,file.host=127.0.0.1,file.port=" + s.nbdPort + ",file.export=disk,file.tls-creds=tls0",
                    "-O", "raw", out.toString()).ok("qemu-img convert over X.509");
            Tools.run(Duration.ofSeconds(60), "cmp", img.toString(), out.toString()).ok("converted image equals the export");
            String uri = "nbds://127.0.0.1:" + s.nbdPort + "/disk?tls-certificates=" + keys.resolve("client-alice");
            assertTrue(Tools.run(Duration.ofSeconds(30), "nbdinfo", uri).ok("nbdinfo with certificates").out().contains("67108864"));
            // refusals: no client certificate, another CA's, a revoked one
            for (String who : List.of("client-none", "client-eve", "client-mallory")) {
                Tools.Result r = qemuImgInfo(s, x509Object(who), "disk");
                assertNotEquals(0, r.exit(), who + " must be refused");
            }
            String log = s.log();
            assertTrue(log.contains("revoked"), log);
            assertTrue(log.contains("is not signed by the CA"), log);
            assertTrue(s.metric("bridgefs_tls_handshakes_total{result=\"failed\"}") >= 3);
            assertEquals(0, s.stop());
        }
    }

    /** A plaintext NBD client against {@code --tls require}: only TLS_REQD, nothing about any export. */
    @Test
    void refusalsWhileAnotherClientCopies(@TempDir Path dir) throws Exception {
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 512 * MIB, 6, 0, 64 * MIB, 256 * MIB, 64 * MIB);
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--nbd-export", "disk=" + img, "--tls", "require",
                "--tls-psk", keys.resolve("psk/keys.psk").toString())) {
            String uri = "nbds://alice@127.0.0.1:" + s.nbdPort + "/disk?tls-psk-file=" + keys.resolve("psk/keys.psk");
            CompletableFuture<Tools.Result> copier = CompletableFuture.supplyAsync(() -> {
                try {
                    return Tools.run(Duration.ofSeconds(300), "nbdcopy", "-C", "2", uri, dir.resolve("copy.img").toString());
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            // plaintext: LIST, INFO and GO get TLS_REQD and nothing else; EXPORT_NAME ends the session
            try (RawNbdClient c = new RawNbdClient(s.nbdPort)) {
                c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                for (int opt : new int[] {NBD_OPT_LIST, NBD_OPT_INFO, NBD_OPT_GO, NBD_OPT_STRUCTURED_REPLY}) {
                    c.option(opt, opt == NBD_OPT_LIST || opt == NBD_OPT_STRUCTURED_REPLY ? new byte[0] : RawNbdClient.infoRequest("disk"));
                    RawNbdClient.OptReply r = c.optReply();
                    assertEquals(opt, r.option());
                    assertEquals(NBD_REP_ERR_TLS_REQD, r.type(), "option " + opt + " before TLS");
                    assertFalse(new String(r.data()).contains("disk"), "nothing about an export before TLS");
                }
                c.option(NBD_OPT_EXPORT_NAME, "disk".getBytes());
                assertTrue(c.closedByServer(), "NBD_OPT_EXPORT_NAME without TLS ends the session");
            }
            assertNotEquals(0, Tools.run(Duration.ofSeconds(30), "nbdinfo", "nbd://127.0.0.1:" + s.nbdPort + "/disk").exit(), "plaintext nbdinfo");
            // a wrong key, an unknown user
            assertNotEquals(0, Tools.run(Duration.ofSeconds(30), "nbdinfo",
                    "nbds://alice@127.0.0.1:" + s.nbdPort + "/disk?tls-psk-file=" + keys.resolve("psk-wrong/keys.psk")).exit(), "wrong key");
            assertNotEquals(0, Tools.run(Duration.ofSeconds(30), "nbdinfo",
                    "nbds://bob@127.0.0.1:" + s.nbdPort + "/disk?tls-psk-file=" + keys.resolve("psk-bob/keys.psk")).exit(), "unknown user");
            assertNotEquals(0, qemuImgInfo(s, pskObject("psk-wrong", "alice"), "disk").exit(), "qemu with a wrong key");
            // STARTTLS with data; garbage inside the TLS stream
            try (RawNbdClient c = new RawNbdClient(s.nbdPort)) {
                c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                c.option(NBD_OPT_STARTTLS, new byte[] {1, 2, 3});
                assertEquals(NBD_REP_ERR_INVALID, c.optReply().type(), "STARTTLS with data");
                c.option(NBD_OPT_STARTTLS, new byte[0]);
                assertEquals(NBD_REP_ACK, c.optReply().type());
                byte[] junk = new byte[4096];
                new java.util.Random(1).nextBytes(junk);
                c.out.write(junk);
                c.out.flush();
                assertTrue(c.closedByServer(), "garbage instead of a TLS handshake closes the connection");
            }
            Tools.Result copy = copier.get();
            copy.ok("the other client's copy went on through every refusal");
            Tools.run(Duration.ofSeconds(60), "cmp", img.toString(), dir.resolve("copy.img").toString()).ok("copy complete");
            String log = s.log();
            assertTrue(log.contains("TLS handshake failed"), log);
            assertTrue(log.contains("refused without TLS"), log);
            assertTrue(log.contains("unknown PSK identity 'bob'"), log);
            assertEquals(0, s.stop());
        }
    }

    /** Over TLS (JSSE, X.509): a second STARTTLS is invalid, and what was negotiated before STARTTLS is forgotten. */
    @Test
    void startTlsTwiceAndNegotiatedStateForgotten(@TempDir Path dir) throws Exception {
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 16 * MIB, 7, 0, MIB);
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--nbd-export", "disk=" + img, "--nbd-export", "open=disk.img",
                "--nbd-export", "locked=disk.img,tls-only", "--tls", "on", "--tls-certificates", keys.resolve("server-dir").toString())) {
            // selective TLS: plaintext clients are served, except on tls-only exports (not even listed)
            try (RawNbdClient c = new RawNbdClient(s.nbdPort)) {
                c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                c.option(NBD_OPT_LIST, new byte[0]);
                StringBuilder names = new StringBuilder();
                RawNbdClient.OptReply r;
                while ((r = c.optReply()).type() == NBD_REP_SERVER) names.append(new String(r.data(), 4, r.data().length - 4)).append(',');
                assertFalse(names.toString().contains("locked"), names.toString());
                assertTrue(names.toString().contains("open"), names.toString());
                c.option(NBD_OPT_GO, RawNbdClient.infoRequest("locked"));
                assertEquals(NBD_REP_ERR_TLS_REQD, c.optReply().type());
                assertEquals(16 * MIB, c.go("open")[0], "plaintext on a normal export");
            }
            try (Socket raw = new Socket("127.0.0.1", s.nbdPort)) {
                DataInputStream in = new DataInputStream(raw.getInputStream());
                DataOutputStream out = new DataOutputStream(raw.getOutputStream());
                in.readFully(new byte[18]);
                out.writeInt(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                option(out, NBD_OPT_STRUCTURED_REPLY, new byte[0]);
                assertEquals(NBD_REP_ACK, replyType(in));
                option(out, NBD_OPT_STARTTLS, new byte[0]);
                assertEquals(NBD_REP_ACK, replyType(in));
                SSLSocket tls = (SSLSocket) sslContext().getSocketFactory().createSocket(raw, "localhost", s.nbdPort, true);
                tls.startHandshake();
                DataInputStream tin = new DataInputStream(tls.getInputStream());
                DataOutputStream tout = new DataOutputStream(tls.getOutputStream());
                option(tout, NBD_OPT_STARTTLS, new byte[0]);
                assertEquals(NBD_REP_ERR_INVALID, replyType(tin), "STARTTLS twice");
                // structured replies were negotiated before STARTTLS: forgotten, so GO's flags lack SEND_DF
                option(tout, NBD_OPT_GO, RawNbdClient.infoRequest("locked"));
                int flags = -1;
                while (true) {
                    assertEquals(OPTION_REPLY_MAGIC, tin.readLong());
                    tin.readInt();
                    int type = tin.readInt();
                    byte[] data = new byte[tin.readInt()];
                    tin.readFully(data);
                    if (type == NBD_REP_ACK) break;
                    assertEquals(NBD_REP_INFO, type, "the tls-only export over TLS");
                    if (data[0] == 0 && data[1] == NBD_INFO_EXPORT) flags = ((data[10] & 0xFF) << 8) | (data[11] & 0xFF);
                }
                assertEquals(0, flags & NBD_FLAG_SEND_DF, "structured replies negotiated before STARTTLS must not survive it");
                // garbage inside the established TLS stream, written under the TLS layer: the server closes
                byte[] junk = new byte[2048];
                new java.util.Random(2).nextBytes(junk);
                raw.getOutputStream().write(junk);
                raw.getOutputStream().flush();
                tls.setSoTimeout(5000);
                boolean closed;
                try {
                    while (tin.read() >= 0) { }
                    closed = true;
                } catch (java.net.SocketTimeoutException e) {
                    closed = false;
                } catch (java.io.IOException e) {
                    closed = true;                     // reset, or a TLS alert
                }
                assertTrue(closed, "garbage inside the TLS stream must end the connection");
                tls.close();
            }
            assertEquals(0, s.stop());
        }
    }

    static void option(DataOutputStream out, int opt, byte[] data) throws Exception {
        out.writeLong(IHAVEOPT);
        out.writeInt(opt);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    static int replyType(DataInputStream in) throws Exception {
        assertEquals(OPTION_REPLY_MAGIC, in.readLong());
        in.readInt();
        int type = in.readInt();
        in.readFully(new byte[in.readInt()]);
        return type;
    }

    static SSLContext sslContext() throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        try (InputStream ca = Files.newInputStream(keys.resolve("ca/ca-cert.pem"))) {
            trust.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(ca));
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, tmf.getTrustManagers(), null);
        return ctx;
    }

    @Test
    void aGuestDiskOverTls(@TempDir Path dir) throws Exception {
        GuestBlockPathIT.run(dir, List.of("--tls", "require", "--tls-psk", keys.resolve("psk/keys.psk").toString()),
                s -> List.of("-object", pskObject("psk", "alice"), "-drive",
                        "if=virtio,format=raw,cache=none,file.driver=nbd,file.host=127.0.0.1,file.port=" + s.nbdPort + ",file.export=disk,file.tls-creds=tls0"));
    }
}
