package io.bridgefs.server.tls;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Vector;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.Certificate;
import org.bouncycastle.tls.CertificateEntry;
import org.bouncycastle.tls.CertificateRequest;
import org.bouncycastle.tls.ClientCertificateType;
import org.bouncycastle.tls.DefaultTlsServer;
import org.bouncycastle.tls.HashAlgorithm;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.SignatureAlgorithm;
import org.bouncycastle.tls.SignatureAndHashAlgorithm;
import org.bouncycastle.tls.TlsCredentialedSigner;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.crypto.TlsCertificate;
import org.bouncycastle.tls.crypto.TlsCryptoParameters;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaDefaultTlsCredentialedSigner;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCrypto;

/**
 * X.509: the server's certificate chain and key from {@code --tls-certificates}, TLS 1.3 and 1.2; with
 * {@code --tls-verify-peer} a client certificate is required, checked against the CA and the CRL, and
 * its common name is the client's identity.
 */
final class CertServer extends DefaultTlsServer implements PeerServer {
    private final X509Material x509;
    private final boolean verifyPeer;
    private final Alerts alerts = new Alerts();
    private String identity;

    CertServer(JcaTlsCrypto crypto, X509Material x509, boolean verifyPeer) {
        super(crypto);
        this.x509 = x509;
        this.verifyPeer = verifyPeer;
    }

    @Override
    protected ProtocolVersion[] getSupportedVersions() {
        return ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
    }

    /** AES-GCM first whatever the client prefers (see {@link PskServer#preferLocalCipherSuites}). */
    @Override
    protected boolean preferLocalCipherSuites() {
        return true;
    }

    @Override
    protected int[] getSupportedCipherSuites() {
        return TlsUtils.getSupportedCipherSuites(getCrypto(), new int[] {
                org.bouncycastle.tls.CipherSuite.TLS_AES_128_GCM_SHA256, org.bouncycastle.tls.CipherSuite.TLS_AES_256_GCM_SHA384,
                org.bouncycastle.tls.CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, org.bouncycastle.tls.CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                org.bouncycastle.tls.CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, org.bouncycastle.tls.CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                org.bouncycastle.tls.CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
                org.bouncycastle.tls.CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, org.bouncycastle.tls.CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256});
    }

    private Certificate chain() throws IOException {
        TlsCertificate[] certs = new TlsCertificate[x509.serverChain.size()];
        for (int i = 0; i < certs.length; i++) certs[i] = getCrypto().createCertificate(x509.serverChain.get(i).getEncoded());
        if (!TlsUtils.isTLSv13(context)) return new Certificate(certs);
        CertificateEntry[] entries = new CertificateEntry[certs.length];
        for (int i = 0; i < certs.length; i++) entries[i] = new CertificateEntry(certs[i], null);
        return new Certificate(TlsUtils.EMPTY_BYTES, entries);
    }

    private TlsCredentialedSigner signer(short signature) throws IOException {
        SignatureAndHashAlgorithm alg;
        if (TlsUtils.isTLSv13(context)) {
            alg = signature == SignatureAlgorithm.rsa ? SignatureAndHashAlgorithm.rsa_pss_rsae_sha256
                    : SignatureAndHashAlgorithm.getInstance(HashAlgorithm.sha256, SignatureAlgorithm.ecdsa);
        } else {
            alg = SignatureAndHashAlgorithm.getInstance(HashAlgorithm.sha256, signature);
        }
        return new JcaDefaultTlsCredentialedSigner(new TlsCryptoParameters(context), (JcaTlsCrypto) getCrypto(), x509.serverKey, chain(), alg);
    }

    /** TLS 1.3 separates the signature from the cipher suite: the key's own kind decides. */
    @Override
    public org.bouncycastle.tls.TlsCredentials getCredentials() throws IOException {
        if (TlsUtils.isTLSv13(context)) return signer(x509.rsa ? SignatureAlgorithm.rsa : SignatureAlgorithm.ecdsa);
        return super.getCredentials();
    }

    @Override
    protected TlsCredentialedSigner getRSASignerCredentials() throws IOException {
        if (!x509.rsa) return null;
        return signer(SignatureAlgorithm.rsa);
    }

    @Override
    protected TlsCredentialedSigner getECDSASignerCredentials() throws IOException {
        if (x509.rsa) return null;
        return signer(SignatureAlgorithm.ecdsa);
    }

    @Override
    public CertificateRequest getCertificateRequest() throws IOException {
        if (!verifyPeer) return null;
        Vector<SignatureAndHashAlgorithm> algs = TlsUtils.getDefaultSupportedSignatureAlgorithms(context);
        // no list of acceptable CAs: a client sends the certificate it has, and a foreign one is refused
        // here by name in the log, rather than silently withheld by the client
        if (TlsUtils.isTLSv13(context)) return new CertificateRequest(TlsUtils.EMPTY_BYTES, algs, null, null);
        return new CertificateRequest(new short[] {ClientCertificateType.rsa_sign, ClientCertificateType.ecdsa_sign}, algs, null);
    }

    @Override
    public void notifyClientCertificate(Certificate cert) throws IOException {
        if (!verifyPeer) return;
        List<X509CertificateHolder> chain = new ArrayList<>();
        for (TlsCertificate c : cert.getCertificateList()) chain.add(new X509CertificateHolder(c.getEncoded()));
        String problem = x509.problemWith(chain);
        if (problem != null) {
            alerts.set(problem);
            throw new TlsFatalAlert(chain.isEmpty() ? AlertDescription.certificate_required
                    : problem.contains("revoked") ? AlertDescription.certificate_revoked : AlertDescription.bad_certificate, problem);
        }
        identity = X509Material.commonName(chain.get(0));
    }

    @Override
    public void notifyAlertRaised(short level, short description, String message, Throwable cause) {
        alerts.raised(level, description, message, cause);
    }

    @Override
    public void notifyAlertReceived(short level, short description) {
        alerts.received(level, description);
    }

    @Override
    public String identity() { return identity; }

    @Override
    public String failure() { return alerts.failure(); }
}
