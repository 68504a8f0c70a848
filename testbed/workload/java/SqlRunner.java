// Runs a file of Flink SQL statements against the cluster `flink run` points it at, and prints the
// id of the job an INSERT starts. Compiled into the Flink image at build time; the harness submits
//     flink run -d -m jobmanager:8081 -c SqlRunner /opt/flink/runner/sql-runner.jar job.sql
// because Flink's SQL client needs the SQL gateway jar, which the PyPI distribution lacks.
//     java -cp ... SqlRunner --validate job.sql
// only plans the statements (DDL is registered, INSERTs are explained, nothing runs, nothing
// connects) and prints "VALID", or "INVALID statement N: <Flink's message>" and exits 3.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;

public class SqlRunner {
    private static final Pattern SET = Pattern.compile("(?is)^SET\\s+'([^']+)'\\s*=\\s*'([^']*)'$");
    private static final Pattern DML = Pattern.compile("(?is)^(INSERT|EXECUTE)\\b.*");

    public static void main(String[] args) throws Exception {
        boolean validate = args[0].equals("--validate");
        String file = validate ? args[1] : args[0];
        String text = new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        StreamTableEnvironment tables = StreamTableEnvironment.create(env);
        int n = 0;
        for (String statement : text.split(";\\s*(\\r?\\n|$)")) {
            String s = statement.trim();
            if (s.isEmpty()) {
                continue;
            }
            n++;
            Matcher set = SET.matcher(s);
            if (set.matches()) {
                tables.getConfig().getConfiguration().setString(set.group(1), set.group(2));
                continue;
            }
            if (!validate) {
                TableResult result = tables.executeSql(s);
                if (result.getJobClient().isPresent()) {
                    System.out.println("Job ID: " + result.getJobClient().get().getJobID());
                }
                continue;
            }
            try {
                if (DML.matcher(s).matches()) {
                    tables.explainSql(s);
                } else {
                    tables.executeSql(s);
                }
            } catch (Exception e) {
                StringBuilder why = new StringBuilder(String.valueOf(e.getMessage()));
                for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
                    why.append("\nCaused by: ").append(c.getMessage());
                }
                System.out.println("INVALID statement " + n + ": " + why);
                System.exit(3);
            }
        }
        if (validate) {
            System.out.println("VALID");
        }
    }
}
