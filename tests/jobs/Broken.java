// A job whose main() fails: the cell must report Flink's root cause, and the matrix go on.
public class Broken {
    public static void main(String[] args) {
        throw new IllegalStateException("broken on purpose: " + String.join(" ", args));
    }
}
