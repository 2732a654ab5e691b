package io.bridgefs.server.tls;

import java.io.IOException;
import java.io.Reader;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.asn1.x500.RDN;
import org.bouncycastle.asn1.x500.style.BCStyle;
import org.bouncycastle.asn1.x500.style.IETFUtils;
import org.bouncycastle.cert.X509CRLHolder;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.operator.ContentVerifierProvider;
import org.bouncycastle.operator.bc.BcRSAContentVerifierProviderBuilder;
import org.bouncycastle.operator.bc.BcECContentVerifierProviderBuilder;
import org.bouncycastle.operator.DefaultDigestAlgorithmIdentifierFinder;

/**
 * The X.509 files of {@code --tls-certificates DIR} (qemu's and nbdkit's names): {@code ca-cert.pem},
 * {@code server-cert.pem} (the chain, server first), {@code server-key.pem}, optional {@code ca-crl.pem}.
 * Checks a client's certificate chain against the CA and the CRL.
 */
public final class X509Material {
    final List<X509CertificateHolder> serverChain;
    final java.security.PrivateKey serverKey;
    final boolean rsa;
    private final X509CertificateHolder ca;
    private final X509CRLHolder crl;

    private X509Material(List<X509CertificateHolder> chain, java.security.PrivateKey key, boolean rsa, X509CertificateHolder ca, X509CRLHolder crl) {
        this.serverChain = chain;
        this.serverKey = key;
        this.rsa = rsa;
        this.ca = ca;
        this.crl = crl;
    }

    public static X509Material load(Path dir) throws IOException {
        List<Object> caObjs = pem(dir.resolve("ca-cert.pem"));
        List<Object> chainObjs = pem(dir.resolve("server-cert.pem"));
        List<Object> keyObjs = pem(dir.resolve("server-key.pem"));
        X509CertificateHolder ca = caObjs.stream().filter(o -> o instanceof X509CertificateHolder).map(o -> (X509CertificateHolder) o)
                .findFirst().orElseThrow(() -> new IOException(dir.resolve("ca-cert.pem") + ": no certificate"));
        List<X509CertificateHolder> chain = new ArrayList<>();
        for (Object o : chainObjs) if (o instanceof X509CertificateHolder c) chain.add(c);
        if (chain.isEmpty()) throw new IOException(dir.resolve("server-cert.pem") + ": no certificate");
        PrivateKeyInfo pki = null;
        for (Object o : keyObjs) {
            if (o instanceof PEMKeyPair kp) pki = kp.getPrivateKeyInfo();
            else if (o instanceof PrivateKeyInfo p) pki = p;
        }
        if (pki == null) throw new IOException(dir.resolve("server-key.pem") + ": no unencrypted private key");
        java.security.PrivateKey key = new org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter().getPrivateKey(pki);
        boolean rsa = key instanceof java.security.interfaces.RSAPrivateKey;
        if (!rsa && !(key instanceof java.security.interfaces.ECPrivateKey)) {
            throw new IOException(dir.resolve("server-key.pem") + ": only RSA and EC keys are supported");
        }
        X509CRLHolder crl = null;
        Path crlFile = dir.resolve("ca-crl.pem");
        if (Files.exists(crlFile)) {
            for (Object o : pem(crlFile)) if (o instanceof X509CRLHolder c) crl = c;
            if (crl == null) throw new IOException(crlFile + ": no CRL");
            if (!verifiedBy(crl, ca)) throw new IOException(crlFile + ": not signed by the CA in ca-cert.pem");
        }
        return new X509Material(List.copyOf(chain), key, rsa, ca, crl);
    }

    private static List<Object> pem(Path file) throws IOException {
        if (!Files.isReadable(file)) throw new IOException(file + ": not found or not readable");
        List<Object> out = new ArrayList<>();
        try (Reader r = Files.newBufferedReader(file); PEMParser p = new PEMParser(r)) {
            Object o;
            while ((o = p.readObject()) != null) out.add(o);
        }
        return out;
    }

    private static ContentVerifierProvider verifier(X509CertificateHolder issuer) throws Exception {
        var keyAlg = issuer.getSubjectPublicKeyInfo().getAlgorithm().getAlgorithm();
        var digests = new DefaultDigestAlgorithmIdentifierFinder();
        if (keyAlg.equals(org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers.rsaEncryption)) {
            return new BcRSAContentVerifierProviderBuilder(digests).build(issuer);
        }
        return new BcECContentVerifierProviderBuilder(digests).build(issuer);
    }

    private static boolean verifiedBy(X509CRLHolder crl, X509CertificateHolder ca) {
        try {
            return crl.isSignatureValid(verifier(ca));
        } catch (Exception e) {
            return false;
        }
    }

    /**
     * Checks a client's chain (leaf first): each certificate valid now and signed by the next, the last
     * signed by the CA, none revoked. Returns null if it holds, else why not.
     */
    String problemWith(List<X509CertificateHolder> chain) {
        if (chain.isEmpty()) return "no client certificate";
        Date now = new Date();
        try {
            for (int i = 0; i < chain.size(); i++) {
                X509CertificateHolder c = chain.get(i);
                if (!c.isValidOn(now)) return "certificate '" + c.getSubject() + "' is not valid now";
                X509CertificateHolder issuer = i + 1 < chain.size() ? chain.get(i + 1) : ca;
                if (!c.getIssuer().equals(issuer.getSubject()) || !c.isSignatureValid(verifier(issuer))) {
                    return "certificate '" + c.getSubject() + "' is not signed by " + (issuer == ca ? "the CA" : "'" + issuer.getSubject() + "'");
                }
                if (crl != null) {
                    BigInteger serial = c.getSerialNumber();
                    if (crl.getRevokedCertificate(serial) != null) return "certificate '" + c.getSubject() + "' is revoked";
                }
            }
            return null;
        } catch (Exception e) {
            return "certificate check failed: " + e.getMessage();
        }
    }

    /** The common name of a certificate's subject (the name {@code users=} refers to), or its whole subject. */
    static String commonName(X509CertificateHolder c) {
        RDN[] cn = c.getSubject().getRDNs(BCStyle.CN);
        return cn.length > 0 ? IETFUtils.valueToString(cn[0].getFirst().getValue()) : c.getSubject().toString();
    }
}
