package io.bridgefs.server.tls;

import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.AlertLevel;

/** The reason a TLS handshake failed, from the alerts raised and received, for one log line. */
final class Alerts {
    private String failure;

    void raised(short level, short description, String message, Throwable cause) {
        if (level != AlertLevel.fatal || failure != null) return;
        Throwable root = cause;
        while (root != null && root.getCause() != null) root = root.getCause();
        failure = "sent " + AlertDescription.getText(description) + (message != null ? ": " + message : "")
                + (root != null ? " (" + root + ")" : "");
    }

    void received(short level, short description) {
        if (level != AlertLevel.fatal || failure != null) return;
        failure = "client sent " + AlertDescription.getText(description);
    }

    void set(String why) {
        if (failure == null) failure = why;
    }

    String failure() { return failure; }
}
