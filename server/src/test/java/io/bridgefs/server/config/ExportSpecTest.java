package io.bridgefs.server.config;

import static org.junit.jupiter.api.Assertions.*;

import java.net.InetSocketAddress;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Export options: the security models of issue 9, their defaults and conflicts, hosts=; a bridged export's entries=. */
class ExportSpecTest {

    @Test
    void securityModelsAndTheirDefaults() {
        assertEquals(P9Security.PASSTHROUGH, P9ExportSpec.parse("s=/d").securityFor(true), "passthrough where the server may switch users");
        assertEquals(P9Security.NONE, P9ExportSpec.parse("s=/d").securityFor(false), "none where it may not");
        assertEquals(P9Security.SQUASH, P9ExportSpec.parse("s=/d,squash=7:8").securityFor(true), "squash= alone means security=squash");
        assertEquals(P9Security.MAPPED, P9ExportSpec.parse("s=/d,security=mapped").securityFor(true));
        assertEquals(P9Security.NONE, P9ExportSpec.parse("s=/d,security=none").securityFor(true));
        P9ExportSpec sq = P9ExportSpec.parse("s=/d,security=squash,squash=7:8");
        assertEquals(7, sq.squashUid());
        assertEquals(8, sq.squashGid());
        assertTrue(P9ExportSpec.parse("s=/d,security=passthrough,root=squash").rootSquash());
    }

    @Test
    void contradictionsAreRefused() {
        for (String bad : List.of("s=/d,security=mapped,squash=1:1", "s=/d,security=squash", "s=/d,security=root",
                "s=/d,security=mapped,root=squash", "s=/d,hosts=", "s=/d,hosts=example.com", "s=/d,hosts=10.0.0.0/33")) {
            assertThrows(IllegalArgumentException.class, () -> P9ExportSpec.parse(bad), bad);
        }
    }

    @Test
    void hostsAdmitOnlyTheirRanges() {
        List<Cidr> h = P9ExportSpec.parse("s=/d,hosts=10.0.0.0/8:[fd00::]/8:192.168.1.7").hosts();
        assertEquals(3, h.size());
        assertTrue(Cidr.admits(h, new InetSocketAddress("10.1.2.3", 1)));
        assertTrue(Cidr.admits(h, new InetSocketAddress("192.168.1.7", 1)));
        assertTrue(Cidr.admits(h, new InetSocketAddress("fd12::1", 1)));
        assertFalse(Cidr.admits(h, new InetSocketAddress("192.168.1.8", 1)));
        assertFalse(Cidr.admits(h, new InetSocketAddress("127.0.0.1", 1)));
        assertFalse(Cidr.admits(h, new io.netty.channel.unix.DomainSocketAddress("/tmp/x")), "a unix socket peer has no address to admit");
        assertTrue(Cidr.admits(List.of(), new InetSocketAddress("127.0.0.1", 1)), "no hosts= admits everyone");
        assertEquals("[10.9.9.9/32]", NbdExportSpec.parse("d=/x.img,hosts=10.9.9.9").hosts().toString());
    }

    @Test
    void aBridgedExportsEntryLimit() {
        assertEquals(NbdExportSpec.DEFAULT_MAX_ENTRIES, NbdExportSpec.parse("t=/srv/tree,bridged").maxEntries());
        assertEquals(1_000_000, NbdExportSpec.parse("t=/srv/tree,bridged,entries=1000000").maxEntries());
        for (String bad : List.of("t=/srv/tree,bridged,entries=0", "t=/srv/tree,bridged,entries=-5", "t=/srv/tree,bridged,entries=1e6",
                "t=/srv/tree,bridged,entries=100000001", "t=/x.img,entries=1000")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NbdExportSpec.parse(bad), bad);
            assertTrue(e.getMessage().contains("entries="), e.getMessage());
        }
    }
}
