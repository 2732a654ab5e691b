package io.bridgefs.server.posix;

import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.Test;

/**
 * A thread acting as a guest user has that user's privileges, not the root server's: the kernel drops
 * only the file-system capabilities when fsuid leaves 0, so Credentials narrows the effective set to the
 * two it needs to switch back (CAP_SETUID, CAP_SETGID). Needs a root server (CI runs as root).
 */
class UserCapabilitiesTest {
    @Test
    void actingAsAUserLeavesOnlyTheCapabilitiesToSwitchBack() throws Exception {
        if (!SwitchesUsers.orSay("UserCapabilitiesTest:")) return;
        long[] server = Capabilities.get();
        long sysAdmin = Capabilities.bit(21), setfcap = Capabilities.bit(31);
        assertNotEquals(0, server[0] & sysAdmin, "a root server holds CAP_SYS_ADMIN: " + Capabilities.names(server[0]));
        Credentials.hold(Credentials.identity(1000));
        try {
            long effective = Capabilities.get()[0];
            assertEquals(Capabilities.bit(Capabilities.SETUID) | Capabilities.bit(Capabilities.SETGID), effective,
                    "acting as uid 1000: " + Capabilities.names(effective));
            assertEquals(0, effective & (sysAdmin | setfcap));
            Credentials.hold(Credentials.identity(1001));      // straight from one user to another
            assertEquals(1001, Credentials.fsuid());
            assertEquals(effective, Capabilities.get()[0]);
        } finally {
            Credentials.serverAgain();
        }
        assertArrayEquals(server, Capabilities.get(), "the server's own again");
    }
}
