package io.bridgefs.server.tls;

/** {@code --tls}: the NBD spec's no TLS, SELECTIVETLS ({@code on}) and FORCEDTLS ({@code require}). */
public enum TlsMode {
    OFF, ON, REQUIRE;

    public static TlsMode parse(String s) {
        return switch (s.toLowerCase(java.util.Locale.ROOT)) {
            case "off", "no", "false" -> OFF;
            case "on", "yes", "true" -> ON;
            case "require", "required", "force" -> REQUIRE;
            default -> throw new IllegalArgumentException("--tls must be off, on or require, not '" + s + "'");
        };
    }
}
