-- faults_spec: every fault of spec/helpers/fault_cases.lua against the sandbox, with the real libcurl transport.
-- Each case ends in success or a structured error within its time limit,
-- and the sandbox's log shows no duplicate create.
local sandbox = require "spec.helpers.sandbox"
local cases = require "spec.helpers.fault_cases"

describe("faults", function()
  local sb, env

  local hooks = sandbox.hooks({ rate_limit = false }, function(s)
    sb = s
    env = cases.env(sb)
  end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  for _, case in ipairs(cases) do
    it(case.name, function()
      case.run(env)
    end)
  end
end)
