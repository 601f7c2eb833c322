package chaostest;

import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;

/**
 * The JVM the JVM-fault tests inject into: calls a few methods in a loop, every 50 ms, and prints one
 * line per round with what each returned or threw and how long it took.
 */
public class ChaosTarget {
    /** The methods faults are aimed at (an inner class: its name has a $). */
    public static class Service {
        public String greet(int n) throws java.io.IOException {
            return "hello-" + n;
        }

        public int number() {
            return 7;
        }
    }

    private static long gcs() {
        long total = 0;
        for (GarbageCollectorMXBean bean : ManagementFactory.getGarbageCollectorMXBeans()) {
            total += Math.max(0, bean.getCollectionCount());
        }
        return total;
    }

    public static void main(String[] args) throws Exception {
        Service service = new Service();
        com.mysql.cj.NativeSession session = new com.mysql.cj.NativeSession();
        Runtime rt = Runtime.getRuntime();
        for (long i = 0; ; i++) {
            long start = System.nanoTime();
            String greet;
            try {
                greet = service.greet((int) i);
            } catch (Throwable e) {
                greet = "threw:" + e.getClass().getName() + ":" + e.getMessage();
            }
            long greetMicros = (System.nanoTime() - start) / 1000;
            String number;
            try {
                number = String.valueOf(service.number());
            } catch (Throwable e) {
                number = "threw:" + e.getClass().getName();
            }
            start = System.nanoTime();
            session.execSQL("select 1");
            long sqlMicros = (System.nanoTime() - start) / 1000;
            System.out.println("round=" + i + " greet=" + greet + " greet_us=" + greetMicros + " number=" + number
                + " sql_us=" + sqlMicros + " heap=" + (rt.totalMemory() - rt.freeMemory()) + " gcs=" + gcs());
            System.out.flush();
            Thread.sleep(50);
        }
    }
}
