package io.bridgefs.server.net;

import static org.junit.jupiter.api.Assertions.*;

import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Model test of flow control: two connections share one {@link MemoryBudget}; random requests arrive
 * and random in-flight ones complete. After every step: requests are dispatched in arrival order, no
 * connection exceeds its limits, the budget never exceeds its limit (but for a lone request), a
 * connection with waiting requests is not being read, and when all have completed every waiting request
 * has been dispatched and the budget is back to zero.
 */
class AdmissionProperties {
    static final long LIMIT = 1000;

    /** A step: connection, and either a new request of that size or (size 0) the completion of its oldest. */
    record Step(int conn, int size) {}

    @Provide
    Arbitrary<List<Step>> steps() {
        return Arbitraries.integers().between(0, 1).flatMap(c -> Arbitraries.integers().between(0, 700).map(n -> new Step(c, n)))
                .list().ofMinSize(1).ofMaxSize(60);
    }

    @Property(tries = 300)
    void boundsHoldAndNothingIsLost(@ForAll("steps") List<Step> steps) {
        MemoryBudget budget = new MemoryBudget(LIMIT);
        List<EmbeddedChannel> chs = List.of(new EmbeddedChannel(), new EmbeddedChannel());
        List<List<Integer>> dispatched = List.of(new ArrayList<>(), new ArrayList<>());
        List<ArrayDeque<Integer>> inFlight = List.of(new ArrayDeque<>(), new ArrayDeque<>());
        List<Admission<Integer>> adm = new ArrayList<>();
        for (int c = 0; c < 2; c++) {
            int cc = c;
            adm.add(new Admission<>(chs.get(c), budget, 3, 600, i -> i / 1000 % 1000 + 1, i -> {
                dispatched.get(cc).add(i);
                inFlight.get(cc).add(i);
            }));
        }
        int[] next = {0, 0};
        for (Step s : steps) {
            Admission<Integer> a = adm.get(s.conn());
            if (s.size() == 0) {
                Integer done = inFlight.get(s.conn()).poll();
                if (done != null) a.done(done / 1000 % 1000 + 1);
            } else {
                a.offer(next[s.conn()]++ * 1_000_000 + s.size() * 1000);   // id, then cost-1 in the thousands
            }
            for (EmbeddedChannel ch : chs) ch.runPendingTasks();
            for (int c = 0; c < 2; c++) {
                assertTrue(inFlight.get(c).size() <= 3, "requests in flight on one connection");
                long bytes = inFlight.get(c).stream().mapToLong(i -> i / 1000 % 1000 + 1).sum();
                assertTrue(bytes <= 600 || inFlight.get(c).size() == 1, "bytes in flight on one connection: " + bytes);
                boolean waiting = next[c] > dispatched.get(c).size();
                if (waiting) assertFalse(chs.get(c).config().isAutoRead(), "a connection with requests waiting must not be read");
            }
            long total = inFlight.get(0).stream().mapToLong(i -> i / 1000 % 1000 + 1).sum()
                    + inFlight.get(1).stream().mapToLong(i -> i / 1000 % 1000 + 1).sum();
            assertEquals(total, budget.used(), "the budget counts exactly what is in flight");
            assertTrue(total <= LIMIT || inFlight.get(0).size() + inFlight.get(1).size() == 1, "budget exceeded: " + total);
        }
        // complete everything: every request offered is dispatched, in order, and nothing stays reserved
        for (int round = 0; round < 1000 && (!inFlight.get(0).isEmpty() || !inFlight.get(1).isEmpty()); round++) {
            for (int c = 0; c < 2; c++) {
                Integer done = inFlight.get(c).poll();
                if (done != null) adm.get(c).done(done / 1000 % 1000 + 1);
            }
            for (EmbeddedChannel ch : chs) ch.runPendingTasks();
        }
        for (int c = 0; c < 2; c++) {
            assertEquals(next[c], dispatched.get(c).size(), "requests of connection " + c + " lost");
            for (int i = 0; i < dispatched.get(c).size(); i++) assertEquals(i, dispatched.get(c).get(i) / 1_000_000, "arrival order");
            assertTrue(adm.get(c).idle());
            assertTrue(chs.get(c).config().isAutoRead(), "reading again once everything is answered");
        }
        assertEquals(0, budget.used());
    }
}
