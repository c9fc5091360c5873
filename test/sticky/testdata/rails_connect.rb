# A Rails-like client through pgmux: each thread connects and configures its connection
# as ActiveRecord's PostgreSQL adapter does, then runs prepared statements and
# transactions, checking that its settings hold on whichever server it gets.
# Usage: ruby rails_connect.rb DSN THREADS ROUNDS. Prints "ok N" or exits non-zero.
require 'pg'

dsn = ARGV.fetch(0)
threads_n = Integer(ARGV.fetch(1))
rounds = Integer(ARGV.fetch(2))
checked = Queue.new
errors = Queue.new
threads = (0...threads_n).map do |id|
  Thread.new do
    conn = PG.connect(dsn)
    begin
      # ActiveRecord::ConnectionAdapters::PostgreSQLAdapter#configure_connection
      conn.set_client_encoding('UTF8')
      conn.exec("SET client_min_messages TO 'warning'")
      conn.exec('SET standard_conforming_strings = on')
      conn.exec('SET intervalstyle = iso_8601')
      conn.exec("SET SESSION timezone TO 'UTC'")
      conn.exec("SET SESSION statement_timeout TO '#{10 + id}s'") # database.yml variables:
      conn.prepare('a1', 'SELECT $1::int + 1 AS n, current_setting($2) AS s')
      rounds.times do |r|
        n = conn.exec_prepared('a1', [r, 'IntervalStyle']).getvalue(0, 0).to_i
        raise "a1: #{n}" unless n == r + 1
        conn.transaction do |tx|
          row = tx.exec("SELECT interval '1 day 2 hours', current_setting('TimeZone'), " \
                        "current_setting('client_min_messages'), current_setting('statement_timeout')").values[0]
          want = ['P1DT2H', 'UTC', 'warning', "#{10 + id}s"]
          raise "thread #{id} round #{r}: #{row.inspect}, want #{want.inspect}" unless row == want
        end
        checked << 1
      end
    rescue StandardError => e
      errors << "thread #{id}: #{e.class}: #{e.message}"
    ensure
      conn.close
    end
  end
end
deadline = Time.now + 120
threads.each { |t| t.join([deadline - Time.now, 0].max) or abort('timeout') }
abort(errors.pop) unless errors.empty?
n = 0
n += checked.pop until checked.empty?
puts "ok #{n}"
