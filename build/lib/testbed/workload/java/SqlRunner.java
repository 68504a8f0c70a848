// Runs a file of Flink SQL statements against the cluster `flink run` points it at, and prints the
// id of the job an INSERT starts. Compiled into the Flink image at build time; the harness submits
//     flink run -d -m jobmanager:8081 -c SqlRunner /opt/flink/runner/sql-runner.jar job.sql
// because Flink's SQL client needs the SQL gateway jar, which the PyPI distribution lacks.
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

    public static void main(String[] args) throws Exception {
        String text = new String(Files.readAllBytes(Paths.get(args[0])), StandardCharsets.UTF_8);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        StreamTableEnvironment tables = StreamTableEnvironment.create(env);
        for (String statement : text.split(";\\s*(\\r?\\n|$)")) {
            String s = statement.trim();
            if (s.isEmpty()) {
                continue;
            }
            Matcher set = SET.matcher(s);
            if (set.matches()) {
                tables.getConfig().getConfiguration().setString(set.group(1), set.group(2));
                continue;
            }
            TableResult result = tables.executeSql(s);
            if (result.getJobClient().isPresent()) {
                System.out.println("Job ID: " + result.getJobClient().get().getJobID());
            }
        }
    }
}
