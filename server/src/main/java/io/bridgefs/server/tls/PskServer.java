package io.bridgefs.server.tls;

import java.nio.charset.StandardCharsets;
import java.util.Vector;
import org.bouncycastle.tls.BasicTlsPSKExternal;
import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.PRFAlgorithm;
import org.bouncycastle.tls.PSKTlsServer;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.PskIdentity;
import org.bouncycastle.tls.TlsPSKExternal;
import org.bouncycastle.tls.TlsPSKIdentityManager;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.crypto.TlsCrypto;

/**
 * Pre-shared keys: TLS 1.3 external PSK (SHA-256, with ECDHE) and TLS 1.2 (EC)DHE-PSK and PSK, what
 * GnuTLS clients (qemu, libnbd) offer with {@code NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK}.
 */
final class PskServer extends PSKTlsServer implements PeerServer {
    private final PskKeys keys;
    private final Alerts alerts = new Alerts();
    private String identity;

    PskServer(TlsCrypto crypto, PskKeys keys) {
        this(crypto, keys, new String[1]);
    }

    private PskServer(TlsCrypto crypto, PskKeys keys, String[] seen) {
        super(crypto, new TlsPSKIdentityManager() {
            @Override
            public byte[] getHint() {
                return null;
            }

            @Override
            public byte[] getPSK(byte[] id) {
                seen[0] = new String(id, StandardCharsets.UTF_8);
                return keys.key(seen[0]);
            }
        });
        this.keys = keys;
        this.seen = seen;
    }

    private final String[] seen;

    @Override
    protected ProtocolVersion[] getSupportedVersions() {
        return ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
    }

    @Override
    protected int[] getSupportedCipherSuites() {
        return TlsUtils.getSupportedCipherSuites(getCrypto(), new int[] {
                CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
                CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
                CipherSuite.TLS_DHE_PSK_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_DHE_PSK_WITH_AES_256_GCM_SHA384,
                CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256, CipherSuite.TLS_DHE_PSK_WITH_AES_128_CBC_SHA256,
                CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_PSK_WITH_AES_256_GCM_SHA384,
                CipherSuite.TLS_PSK_WITH_AES_128_CBC_SHA256});
    }

    /** AES-GCM first whatever the client prefers: the JDK runs it on the CPU's AES instructions, ChaCha20 in plain Java. */
    @Override
    protected boolean preferLocalCipherSuites() {
        return true;
    }

    @Override
    public TlsPSKExternal getExternalPSK(Vector identities) {
        for (Object o : identities) {
            PskIdentity id = (PskIdentity) o;
            String name = new String(id.getIdentity(), StandardCharsets.UTF_8);
            byte[] key = keys.key(name);
            if (key != null) {
                seen[0] = name;
                return new BasicTlsPSKExternal(id.getIdentity(), getCrypto().createSecret(key), PRFAlgorithm.tls13_hkdf_sha256);
            }
            alerts.set("unknown PSK identity '" + name + "'");
        }
        return null;
    }

    @Override
    public void notifyHandshakeComplete() throws java.io.IOException {
        super.notifyHandshakeComplete();
        identity = seen[0];
    }

    @Override
    public void notifyAlertRaised(short level, short description, String message, Throwable cause) {
        if (seen[0] != null && keys.key(seen[0]) == null) alerts.set("unknown PSK identity '" + seen[0] + "'");
        alerts.raised(level, description, message, cause);
    }

    @Override
    public void notifyAlertReceived(short level, short description) {
        alerts.received(level, description);
    }

    @Override
    public String identity() { return identity; }

    @Override
    public String failure() {
        String f = alerts.failure();
        return seen[0] != null && f != null && f.contains("decrypt_error") ? f + " (wrong key for PSK identity '" + seen[0] + "'?)" : f;
    }
}
