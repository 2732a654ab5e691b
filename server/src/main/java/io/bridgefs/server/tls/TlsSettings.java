package io.bridgefs.server.tls;

import java.nio.file.Path;

/**
 * TLS for the NBD listener, with qemu-nbd's and nbdkit's meanings and file names.
 *
 * @param mode off, on (plaintext clients served except on tls-only exports) or require
 * @param certificates directory with ca-cert.pem, server-cert.pem, server-key.pem and optional ca-crl.pem
 * @param verifyPeer clients must present a certificate signed by the CA (and not revoked)
 * @param psk a keys.psk file (lines {@code username:hexkey}, as psktool writes); wins over certificates
 */
public record TlsSettings(TlsMode mode, Path certificates, boolean verifyPeer, Path psk) {
    public static final TlsSettings OFF = new TlsSettings(TlsMode.OFF, null, false, null);

    public TlsSettings {
        if (mode != TlsMode.OFF && certificates == null && psk == null) {
            throw new IllegalArgumentException("--tls " + mode.name().toLowerCase() + " needs --tls-certificates DIR or --tls-psk FILE");
        }
        if (verifyPeer && certificates == null) throw new IllegalArgumentException("--tls-verify-peer needs --tls-certificates DIR");
    }

    public boolean enabled() { return mode != TlsMode.OFF; }
}
