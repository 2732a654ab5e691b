package io.bridgefs.server.tls;

import java.io.IOException;
import java.security.SecureRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCrypto;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;

/**
 * TLS for the NBD listener: the settings, the credentials read once at start-up (a bad file ends start-up
 * with one line), a new BouncyCastle TLS server for each STARTTLS, and the counters
 * {@code bridgefs_tls_handshakes_total{result}} and {@code bridgefs_tls_connections}. With both a PSK
 * file and certificates, PSK is used (as nbdkit does).
 */
public final class NbdTls {
    public static final NbdTls OFF = new NbdTls(TlsSettings.OFF, null, null);

    private final TlsSettings settings;
    private final PskKeys psk;
    private final X509Material x509;
    /**
     * The JDK's providers do the cryptography (AES-GCM with the CPU's instructions; BouncyCastle's own
     * pure-Java ciphers measured 2-6x slower), BouncyCastle's provider what they lack (RSASSA-PSS under
     * the names BouncyCastle's TLS asks for).
     */
    private final JcaTlsCrypto crypto;

    static {
        // last in the list: consulted only for what the JDK's own providers lack
        if (java.security.Security.getProvider("BC") == null) java.security.Security.addProvider(new org.bouncycastle.jce.provider.BouncyCastleProvider());
    }
    public final AtomicLong handshakesOk = new AtomicLong();
    public final AtomicLong handshakesFailed = new AtomicLong();
    public final AtomicLong active = new AtomicLong();

    private NbdTls(TlsSettings settings, PskKeys psk, X509Material x509) {
        this.crypto = new JcaTlsCryptoProvider().create(new SecureRandom());
        this.settings = settings;
        this.psk = psk;
        this.x509 = x509;
    }

    public static NbdTls load(TlsSettings s) throws IOException {
        if (!s.enabled()) return new NbdTls(s, null, null);
        PskKeys psk = s.psk() != null ? PskKeys.read(s.psk()) : null;
        X509Material x509 = psk == null ? X509Material.load(s.certificates()) : null;
        return new NbdTls(s, psk, x509);
    }

    public TlsMode mode() { return settings.mode(); }

    public boolean enabled() { return settings.enabled(); }

    /** What kind of credentials clients must bring, for the start-up lines. */
    public String describe() {
        if (!enabled()) return "off";
        return settings.mode().name().toLowerCase() + (psk != null ? ", pre-shared keys (" + psk.size() + " users)"
                : ", X.509" + (settings.verifyPeer() ? " with client certificates" : ""));
    }

    /** A fresh TLS server for one connection. */
    PeerServer newServer() {
        return psk != null ? new PskServer(crypto, psk) : new CertServer(crypto, x509, settings.verifyPeer());
    }
}
