# ruby-pg through pgmux: several threads, each with its own connection, use
# conn.prepare / conn.exec_prepared with the same statement names.
# Usage: ruby ruby_pg.rb DSN. Prints "ok N" or exits non-zero.
require 'pg'

dsn = ARGV.fetch(0)
checked = Queue.new
threads = (0...8).map do |id|
  Thread.new do
    conn = PG.connect(dsn)
    begin
      conn.prepare('a1', "SELECT $1::int + #{id} AS s")
      conn.prepare('a2', 'SELECT $1::text AS t')
      30.times do |r|
        s = conn.exec_prepared('a1', [r]).getvalue(0, 0).to_i
        raise "a1: #{s}" unless s == r + id
        conn.transaction do |tx|
          t = tx.exec_prepared('a2', ["t#{id}-#{r}"]).getvalue(0, 0)
          raise "a2: #{t}" unless t == "t#{id}-#{r}"
        end
        checked << 2
      end
    ensure
      conn.close
    end
  end
end
limit = 120
deadline = Time.now + limit
threads.each { |t| t.join([deadline - Time.now, 0].max) or abort('timeout') }
n = 0
n += checked.pop until checked.empty?
puts "ok #{n}"
